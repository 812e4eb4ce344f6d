@routes
Feature: Routes are registered in the data plane and the gateway
  Istio's control plane pushes every service's route to every workload's data plane, so
  any workload reaches any other by name, and the Ingress's paths to the ingress gateway:
  with sidecars, to every injected sidecar's route table; in ambient mode, to the waypoint
  that carries a namespace's traffic, or without one to every node's ztunnel, which must
  know each service and reach its workloads over HBONE. A cluster change that breaks this
  breaks the whole mesh, so the gate reads the live configuration of each proxy, not the
  configuration that was applied.

  Background:
    Given the blockchain workloads are deployed in the mesh

  @smoke
  Scenario: composer's route is registered in its data plane
    Then the data plane of composer routes "composer" port 8080 to its service

  Scenario Outline: <client> can route to <service> on port <port>
    Then the data plane of <client> routes "<service>" port <port> to its service

    Examples:
      | client     | service    | port |
      | composer   | vp0        | 7050 |
      | composer   | vp0        | 7051 |
      | composer   | membersrvc | 7054 |
      | vp0        | membersrvc | 7054 |
      | membersrvc | composer   | 8080 |

  Scenario Outline: the ingress gateway routes <path> to <service>
    Then the ingress gateway routes "<path>" to <service> port <port>

    Examples:
      | path            | service  | port |
      | /login          | composer | 8080 |
      | /chain/blocks/0 | vp0      | 7050 |
