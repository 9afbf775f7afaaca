"""spark-submit entry point for `recspark train` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/train.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
