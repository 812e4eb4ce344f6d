"""Let ``python -m meshgate`` work without an installed console script."""

from meshgate.cli import main

raise SystemExit(main())
