@mtls
Feature: Traffic between the workloads is mutually authenticated
  On Istio every hop between sidecars is mutual TLS by default (auto mTLS): each side
  presents the certificate of its workload's identity (its service account, as a SPIFFE
  ID), and the receiving sidecar knows who called. A platform team upgrading a mesh wants
  to know that this still holds, and that with STRICT mutual TLS a client outside the mesh
  is refused while mesh traffic and ingress keep working. In ambient mode ztunnel carries
  every hop in mutual TLS (HBONE) and refuses plaintext under STRICT: the checks of a
  sidecar's clusters are skipped there, saying so; the callers' identities are read from
  ztunnel's metrics (a waypoint's, where one carries the requests), and the STRICT scenario
  holds as it is.

  Background:
    Given the blockchain workloads are deployed in the mesh

  Scenario Outline: <client>'s sidecar sends mutual TLS to <service>
    Then the sidecar of <client> sends Istio's mutual TLS to "<service>" port <port>

    Examples:
      | client   | service    | port |
      | composer | vp0        | 7050 |
      | composer | membersrvc | 7054 |
      | vp0      | membersrvc | 7054 |

  @smoke @telemetry
  Scenario: the ingress gateway and composer call with their own identities
    When 5 requests are sent to "/login" through the ingress gateway
    Then Prometheus counts the 5 requests to composer from the ingress gateway over mutual TLS
    And Prometheus counts the 5 requests to vp0 from composer over mutual TLS

  Scenario: with STRICT mutual TLS a client outside the mesh is refused
    Given a client outside the mesh
    And the client outside the mesh is served by composer
    When the namespace requires mutual TLS
    Then the client outside the mesh is refused by composer
    And "/login" through the ingress gateway answers 200 with HTML from composer 5 times in a row within 30 seconds
