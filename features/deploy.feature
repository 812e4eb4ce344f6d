@deploy
Feature: The blockchain workloads deploy into the mesh
  The composer, vp0 and membersrvc manifests and their Ingress apply cleanly, and the mesh
  takes every pod in: with sidecars, each runs with an Istio sidecar injected by the
  control plane; in ambient mode, none has a sidecar and istio-cni has redirected each to
  its node's ztunnel. When this fails, nothing else the mesh promises can work.

  Background:
    Given the blockchain workloads are deployed in the mesh

  @smoke
  Scenario Outline: <workload> runs in the mesh
    Then every pod of <workload> is Ready in the mesh

    Examples:
      | workload   |
      | composer   |
      | vp0        |
      | membersrvc |
