"""``python -m rpcd`` is the ``rpcd`` command."""

from rpcd.cli import main

raise SystemExit(main())
