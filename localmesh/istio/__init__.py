"""localmesh's Istio: the injector (admission) and its webhook configurations, istiod (xDS)
and its revisions, and the mesh installer."""
