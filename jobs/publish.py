"""spark-submit entry point for `recspark publish` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/run.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["publish", *sys.argv[1:]]))
