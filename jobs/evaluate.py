"""spark-submit entry point for `recspark evaluate` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/evaluate.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
