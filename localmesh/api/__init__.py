"""localmesh's Kubernetes API server: HTTP handlers over the object store."""
