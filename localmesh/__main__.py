"""``python -m localmesh`` = the ``localmesh`` console script."""

import sys

from localmesh.cli import main

sys.exit(main())
