@routes
Feature: Routes are registered in the sidecars and the gateway
  Istio's control plane pushes every service's route to every injected sidecar, so any
  workload reaches any other by name, and the Ingress's paths to the ingress gateway. A
  cluster change that breaks this breaks the whole mesh, so the gate reads the live route
  table of each proxy (its Envoy config dump), not the configuration that was applied.

  Background:
    Given the blockchain workloads are deployed with sidecars

  @smoke
  Scenario: composer's route is registered in its sidecar
    Then the sidecar of composer routes "composer" port 8080 to its service

  Scenario Outline: <client> can route to <service> on port <port>
    Then the sidecar of <client> routes "<service>" port <port> to its service

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
