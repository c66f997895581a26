"""One module per `woosync` sub-command: `add_arguments(parser)` and `run(args, settings) -> int`."""
