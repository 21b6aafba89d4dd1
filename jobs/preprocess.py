"""spark-submit entry point: ``spark-submit jobs/preprocess.py INPUT OUTPUT [options]``.

Takes exactly the options of ``fmaprep preprocess``; all logic lives in the fmaprep package.
"""

import sys

from fmaprep.cli import main

if __name__ == "__main__":
    sys.exit(main(["preprocess", *sys.argv[1:]]))
