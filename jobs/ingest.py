"""spark-submit entry point for `recspark ingest` (no logic: the arguments go to recspark's CLI).

spark-submit [cluster settings] jobs/ingest.py --help
"""

import sys

from recspark.cli import main

if __name__ == "__main__":
    sys.exit(main(["ingest", *sys.argv[1:]]))
