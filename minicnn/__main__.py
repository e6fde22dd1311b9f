"""`python -m minicnn ...`: see minicnn/cli.py."""

import sys

from .cli import main

sys.exit(main())
