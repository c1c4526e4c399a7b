"""`harness schema`: write the JSON Schemas of games.jsonl and events.jsonl lines, and of status.json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="Write the JSON Schemas of the run files (default: docs/schemas).")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="Directory to write *.schema.json into (the repository's copy: docs/schemas).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.records import json_schemas
    from harness.status.model import status_json_schema

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in {**json_schemas(), "status.schema.json": status_json_schema()}.items():
        (out / name).write_text(json.dumps(schema, indent=2) + "\n")
        print(out / name)
    return 0
