"""CLI commands of the game harness and console output; `registry` finds every command."""
