"""Lets `python -m fiv_console` run the command line."""

from fiv_console.cli import main

raise SystemExit(main())
