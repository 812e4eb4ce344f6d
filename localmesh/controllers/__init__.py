"""Reconcilers: each watches what it owns and converges it, like kube-controller-manager's
controllers. A new behaviour is a new reconciler here, not a branch in the API handlers."""
