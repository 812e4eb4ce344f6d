@ingress
Feature: Ingress paths work
  The Ingress sends /login to composer and /chain/blocks/0 to vp0 through Istio's ingress
  gateway; anything else is not routed. The gate wants several answers in a row within a
  time limit, not one lucky response.

  Background:
    Given the blockchain workloads are deployed with sidecars

  @smoke
  Scenario Outline: <path> through the ingress gateway answers <status>
    Then "<path>" through the ingress gateway answers <status> with <content> 5 times in a row within 30 seconds

    Examples:
      | path            | status | content               |
      | /login          | 200    | HTML from composer    |
      | /chain/blocks/0 | 200    | a JSON block from vp0 |
      | /no/such/path   | 404    | nothing               |
