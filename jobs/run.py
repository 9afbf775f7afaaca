"""spark-submit entry point for `recspark run` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/run.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
