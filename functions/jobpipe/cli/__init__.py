"""The `jobpipe` command line (see `jobpipe.cli.main`)."""
