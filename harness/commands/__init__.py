"""CLI commands of the game harness (see harness.cli.COMMAND_MODULES)."""
