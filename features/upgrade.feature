@upgrade @nightly @cluster-fault
Feature: The blockchain keeps serving while the control plane is upgraded
  Istio's recommended upgrade installs the new control plane beside the old one (a
  revision), moves the namespace to it and restarts the workloads onto its sidecar. Done
  right, not one request fails: requests flow through the change on new and on kept
  connections, and afterwards every sidecar is on the new revision and the mesh still
  routes. The gate also proves it bites: a change that kills vp0 without a grace period is
  reported as disruptive, with its numbers. The upgrade installs a control plane, so it
  runs where the run created the cluster, or with --allow-cluster-faults.

  Background:
    Given the blockchain workloads are deployed with sidecars

  Scenario: a change that kills vp0 without a grace period is reported as disruptive
    Given requests flow through the ingress gateway
    When vp0's pods are deleted without a grace period
    Then the requests through the ingress gateway show the disruption

  Scenario: a canary upgrade by revision drops no request
    Given requests flow through the ingress gateway
    When the control plane is upgraded to revision "1-2x" by deploy/canary-upgrade.sh
    Then no request through the ingress gateway failed
    And every sidecar of the blockchain workloads is on revision "1-2x"
    And the sidecar of composer routes "vp0" port 7050 to its service
    And the ingress gateway routes "/login" to composer port 8080
