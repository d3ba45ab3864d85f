"""``multistyle presets``, ``backends`` and ``weights``: what there is, printed."""

from __future__ import annotations

import argparse
import json
import sys
from typing import List

from ..backend import describe_backends
from ..settings import PRESETS


def cmd_weights(args: argparse.Namespace) -> int:
    from .. import weightfiles

    if args.action == "info":
        print("\n".join(weightfiles.describe(args.file)))
        return 0
    weights, kind = weightfiles.convert(args.source, args.destination)
    print(f"wrote {args.destination}: {len(weights)} convolutions from {args.source} ({kind}), "
          f"sha256 {weightfiles.checksum(weights)[:16]}")
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    for row in describe_backends():
        if row["usable"]:
            print(f"{row['name']:10} usable    {row['version']}; devices: {', '.join(row['devices'])}; "
                  f"optimizers: {', '.join(f'{name} ({source})' for name, source in row['optimizers'].items())}")
        else:
            print(f"{row['name']:10} unusable  {row['reason']}")
            if row.get("traceback"):  # a bug of ours: the report needs the traceback
                print(row["traceback"], file=sys.stderr)
    return 0


def presets_table() -> List[List[str]]:
    """Every preset's settings: a header row of preset names, then one row per setting, in one order."""
    names = list(PRESETS)
    keys = list(dict.fromkeys(key for preset in PRESETS.values() for key in preset))

    def text(value: object) -> str:
        return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else "-" if value is None else f"{value:g}" \
            if isinstance(value, float) else str(value)

    return [["setting"] + names] + [[key] + [text(PRESETS[name].get(key)) for name in names] for key in keys]


def cmd_presets(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps(PRESETS, indent=2))
        return 0
    rows = presets_table()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return 0


