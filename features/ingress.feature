@ingress
Feature: Ingress paths work
  The Ingress sends /login to composer and /chain/blocks/0 to vp0 through Istio's ingress
  gateway; anything else is not routed. The gate wants several answers in a row within a
  time limit, not one lucky response. The same paths must work through every kind of
  ingress object the cluster supports: the Kubernetes Ingress, Istio's Gateway and
  VirtualService, and the Gateway API's Gateway and HTTPRoute (where its CRDs are
  installed; elsewhere that example is skipped, saying so).

  Background:
    Given the blockchain workloads are deployed in the mesh

  @smoke
  Scenario Outline: <path> through the ingress gateway answers <status>
    Then "<path>" through the ingress gateway answers <status> with <content> 5 times in a row within 30 seconds

    Examples:
      | path            | status | content               |
      | /login          | 200    | HTML from composer    |
      | /chain/blocks/0 | 200    | a JSON block from vp0 |
      | /no/such/path   | 404    | nothing               |

  Scenario Outline: the ingress paths work through <kind>
    Given the blockchain's ingress is <kind>
    Then "/login" through the ingress gateway answers 200 with HTML from composer 5 times in a row within 30 seconds
    And "/chain/blocks/0" through the ingress gateway answers 200 with a JSON block from vp0 5 times in a row within 30 seconds

    Examples:
      | kind                                |
      | a Kubernetes Ingress                |
      | an Istio Gateway and VirtualService |

    @gateway-api
    Examples:
      | kind                                |
      | a Gateway API Gateway and HTTPRoute |
