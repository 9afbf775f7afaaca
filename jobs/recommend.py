"""spark-submit entry point for `recspark recommend` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/recommend.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["recommend", *sys.argv[1:]]))
