@telemetry
Feature: Telemetry reaches the mixer
  In 2017 this was `oc logs istio-mixer | grep composer`. Mixer is gone since Istio 1.8:
  every sidecar now reports Istio's standard metrics, and the mesh's Prometheus scrapes
  them. The gate sends real requests and waits until Prometheus has scraped counts that
  include them, as reported where they arrive: by the receiving sidecar, or in ambient
  mode by the receiving node's ztunnel (its TCP connections and bytes) and the waypoint
  that carries requests. On a Mixer-era mesh (Istio 1.x before 1.8) the same counts come
  from Mixer's Prometheus adapter, and the mixer's own log is read as the seed read it;
  elsewhere that scenario is skipped, saying why.

  Background:
    Given the blockchain workloads are deployed in the mesh

  @smoke
  Scenario Outline: requests to <service> are counted in Prometheus
    When 5 requests are sent to "<path>" through the ingress gateway
    Then Prometheus counts the 5 requests to <service> reported by its data plane with response code 200

    Examples:
      | path            | service  |
      | /login          | composer |
      | /chain/blocks/0 | vp0      |

  Scenario: composer's sidecar logs the request, today's form of grepping Mixer's log
    When 1 request is sent to "/login" through the ingress gateway
    Then the access log of composer's sidecar shows the request to "/login"

  @mixer
  Scenario: the mixer logs and counts the requests, as `oc logs istio-mixer | grep composer` did
    When 3 requests are sent to "/login" through the ingress gateway
    Then the mixer's log shows the requests to composer with response code 200
    And the mixer's metrics count the 3 requests to composer with response code 200
