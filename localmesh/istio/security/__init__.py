"""Istio's security on localmesh: the mesh CA, its certificate service and the root
certificate's publication (istio/istio ``security/pkg``); see docs/localmesh.md."""
