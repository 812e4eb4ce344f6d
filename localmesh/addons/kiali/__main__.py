"""``python -m localmesh.addons.kiali``: the program of the Kiali addon's pod."""

import sys

from localmesh.addons import main
from localmesh.addons.kiali.app import DEFAULT_PORT, PROGRAM, build_app

sys.exit(main(build_app, PROGRAM, DEFAULT_PORT))
