@graph
Feature: Service-graph edges exist
  The mesh's service graph (Kiali today, the servicegraph addon in Istio 0.x, or edges
  derived from Prometheus where neither is installed) shows who talks to whom. A request
  to /login through the ingress makes composer call vp0 and membersrvc, and vp0 enrols
  with membersrvc on its own.

  Background:
    Given the blockchain workloads are deployed in the mesh

  @smoke
  Scenario: traffic through the ingress draws the blockchain's service graph
    When 5 requests are sent to "/login" through the ingress gateway
    Then the service graph has these edges:
      | source               | target     |
      | istio-ingressgateway | composer   |
      | composer             | vp0        |
      | composer             | membersrvc |
      | vp0                  | membersrvc |
