@chaos @nightly
Feature: The mesh recovers from faults
  A mesh must heal on its own: a crashed app or proxy is restarted by the kubelet and the
  proxy resyncs with istiod; a restarted telemetry backend or control plane catches up.
  These scenarios kill things, so they run in the nightly profile, not the gate. The ones
  tagged @cluster-fault delete pods every namespace depends on: on a cluster the run did
  not create they also need --allow-cluster-faults.

  Background:
    Given the blockchain workloads are deployed in the mesh

  Scenario: composer's app process is killed during ingress traffic
    When the app process of composer is killed while traffic flows to "/login" through the ingress gateway
    Then the restart is visible in the composer container's restartCount
    And "/login" through the ingress gateway answers 200 with HTML from composer 5 times in a row within 30 seconds

  Scenario: vp0's Envoy is killed during ingress traffic
    When the Envoy of vp0 is killed while traffic flows to "/chain/blocks/0" through the ingress gateway
    Then the restart is visible in the istio-proxy container's restartCount
    And "/chain/blocks/0" through the ingress gateway answers 200 with a JSON block from vp0 5 times in a row within 30 seconds

  @cluster-fault
  Scenario: telemetry converges again after Prometheus restarts
    When the Prometheus pod is deleted and its replacement is Ready
    And 5 requests are sent to "/chain/blocks/0" through the ingress gateway
    Then Prometheus counts the 5 requests to vp0 reported by its data plane with response code 200

  @cluster-fault
  Scenario: every sidecar resyncs after istiod restarts
    When the istiod pod is deleted and its replacement is Ready
    And a service "canary" with HTTP port 9080 is created
    Then every sidecar of the blockchain workloads is Ready
    And the sidecar of composer routes "canary" port 9080 to its service
    And the sidecar of vp0 routes "canary" port 9080 to its service
    And the sidecar of membersrvc routes "canary" port 9080 to its service
