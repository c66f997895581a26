"""`python -m woosync.simulator`: the same as `woosync simulator`."""

import sys

from woosync.simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
