@deploy
Feature: The blockchain workloads deploy into the mesh
  The composer, vp0 and membersrvc manifests and their Ingress apply cleanly, and the mesh
  takes every pod in: each runs with an Istio sidecar injected by the control plane. When
  this fails, nothing else the mesh promises can work.

  Background:
    Given the blockchain workloads are deployed with sidecars

  @smoke
  Scenario Outline: <workload> runs with an injected sidecar
    Then every pod of <workload> is Ready with an injected istio-proxy sidecar

    Examples:
      | workload   |
      | composer   |
      | vp0        |
      | membersrvc |
