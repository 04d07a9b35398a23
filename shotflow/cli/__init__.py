"""The `shotflow` command: the composition root, the one place that may start the Prefect shell.

parser.py holds the argument parser and `main`; each command lives with its kin: storyboards.py
(new, validate, estimate, schema) and models.py, which never import Prefect; run.py (`shotflow run`)
with flowrun.py (the flow on a Prefect API, its thread, the live display, signals) and summary.py
(what a finished run prints); paid.py (ledger, cancel, accept); servers.py (server, serve, deploy).
options.py parses the options several commands share; output.py lays out tables and writes the
files a user names (money is worded by shotflow/money.py). Nothing in shotflow imports this package.
"""

from shotflow.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
