"""Binds every scenario of features/ to pytest (pytest-bdd's ``scenarios``).

Features are bound in the order a reviewer reads them, which is also the order that lets
the mesh work in the background: the deployment first, the checks of the proxies next,
then the ones that need scraped telemetry, and the faults last.
"""

from pytest_bdd import scenarios

ORDER = ("deploy", "routes", "ingress", "mtls", "authz", "telemetry", "graph", "chaos", "upgrade")

for _feature in ORDER:
    scenarios(f"../features/{_feature}.feature")
scenarios("../features")  # anything not listed above
