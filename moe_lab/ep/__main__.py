"""``python -m moe_lab.ep``: see :func:`moe_lab.ep.cli.main`."""

import sys

from moe_lab.ep.cli import main

sys.exit(main())
