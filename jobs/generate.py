"""spark-submit entry point for `recspark generate` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/generate.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["generate", *sys.argv[1:]]))
