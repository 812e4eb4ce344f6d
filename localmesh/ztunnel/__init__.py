"""localmesh's ztunnel: a real Envoy for the node's HBONE and the agent that makes it
ztunnel (agent.py); what it knows of the mesh (state.py) and its metrics (metrics.py)."""
