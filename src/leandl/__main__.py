"""``python -m leandl`` runs the CLI."""

from __future__ import annotations

from leandl.cli import main

raise SystemExit(main())
