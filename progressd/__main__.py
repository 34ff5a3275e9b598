"""Run the ``progressd`` command line: ``python -m progressd``."""

import sys

from progressd.cli import main

sys.exit(main())
