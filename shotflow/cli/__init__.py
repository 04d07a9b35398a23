"""The `shotflow` command: the composition root, the one place that may start the Prefect shell.

parser.py holds the argument parser and `main`; each command lives with its kin: storyboards.py
(new, validate, estimate, schema), models.py, run.py with summary.py and flowrun.py (the render
flow on Prefect, the live display, signals), paid.py (ledger, cancel, accept) and servers.py
(server, serve, deploy). Nothing in shotflow imports this package.
"""

from shotflow.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
