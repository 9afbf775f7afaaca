"""spark-submit entry point for `recspark similar` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/similar.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["similar", *sys.argv[1:]]))
