import sys

from woosync.cli import main

sys.exit(main())
