"""The run directory on disk: manifest, games.jsonl, events.jsonl; appending, repairing and
reading them back for resume."""
