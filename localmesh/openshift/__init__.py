"""The OpenShift flavor (``localmesh up --flavor openshift``): Routes served by a real
HAProxy router, Projects, SecurityContextConstraints admission, OpenShift's config API and
OpenShift Service Mesh 2 (Maistra) or 3 (Sail). Assembled by platform.py."""
