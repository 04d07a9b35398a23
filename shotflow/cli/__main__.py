"""`python -m shotflow.cli`: the same as the `shotflow` command."""

import sys

from shotflow.cli.parser import main

sys.exit(main())
