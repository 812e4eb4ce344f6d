"""localmesh's Istio: the injector (admission), istiod (xDS) and the mesh installer."""
