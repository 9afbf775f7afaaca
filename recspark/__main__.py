"""``python -m recspark ...``: the same command line as the ``recspark`` script."""

import sys

from recspark.cli import main

sys.exit(main())
