"""``python -m gatewaybench`` (with ``bench/`` on ``PYTHONPATH``); ``bench/run`` is the usual entry point."""

import sys

from gatewaybench.cli import main

sys.exit(main())
