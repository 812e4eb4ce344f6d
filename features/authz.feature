@authz
Feature: Authorization policies are enforced by the sidecars
  An AuthorizationPolicy becomes Envoy's RBAC filter in the sidecars it selects: a DENY
  policy answers 403 "RBAC: access denied", an ALLOW policy admits only what it names.
  After a mesh change, the policies a platform team relies on must still deny what they
  should — and removing one must restore the traffic.

  Background:
    Given the blockchain workloads are deployed with sidecars

  @smoke
  Scenario: a DENY policy on the chain's blocks refuses them until it is removed
    When an authorization policy denies GET "/chain/blocks/*" on vp0
    Then "/chain/blocks/0" through the ingress gateway answers 403 with RBAC's denial 3 times in a row within 30 seconds
    When the authorization policy is removed
    Then "/chain/blocks/0" through the ingress gateway answers 200 with a JSON block from vp0 5 times in a row within 30 seconds

  Scenario: an ALLOW policy admits only composer to membersrvc
    Given a client inside the mesh
    When an authorization policy allows only composer to call membersrvc
    Then "/login" through the ingress gateway answers 200 with HTML from composer 5 times in a row within 30 seconds
    And the client inside the mesh is denied by membersrvc
