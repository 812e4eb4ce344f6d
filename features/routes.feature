@routes
Feature: Routes are registered in the sidecars
  Istio's control plane pushes every service's route to every injected sidecar, so any
  workload reaches any other by name. A cluster change that breaks this breaks the whole
  mesh, so the gate checks the live route table of each sidecar, not the configuration
  that was applied.

  Background:
    Given the composer workload is deployed with a sidecar

  @smoke
  Scenario: composer's route is registered in its sidecar
    Then the sidecar of composer routes "composer" port 8080 to its service
