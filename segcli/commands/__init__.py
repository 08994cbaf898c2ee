"""Command drivers: one module per `segcli` subcommand, called by cli.py and api.py."""
