"""The `woosync` command line: migrate, org, run, simulator, sync, demo, bench."""

__version__ = "0.1.0"
