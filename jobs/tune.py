"""spark-submit entry point for `recspark tune` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/tune.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
