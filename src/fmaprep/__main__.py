import sys

from fmaprep.cli import main

sys.exit(main())
