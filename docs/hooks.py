"""MkDocs hooks: the pages that are generated from the code at build time, so that code, help and docs
cannot drift: the CLI reference from the parser, the presets table from PRESETS, the backends table from
the backend specs.  (The tutorial page is examples/compare_frameworks.ipynb, through a symbolic link.)"""

from __future__ import annotations

import argparse
import os

from mkdocs.structure.files import File


def _cli_reference() -> str:
    from multistyle.cli import build_parser

    parser = build_parser()
    parts = ["# Command line\n", "Generated from the parser at build time: this is `--help` for each command.\n",
             "```text\n" + parser.format_help() + "```\n"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                parts.append(f"## `multistyle {name}`\n\n```text\n{sub.format_help()}```\n")
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        for child, parser_child in inner.choices.items():
                            parts.append(f"### `multistyle {name} {child}`\n\n```text\n"
                                         f"{parser_child.format_help()}```\n")
    return "\n".join(parts)


def _backends_reference() -> str:
    from multistyle.backend import BUILTIN_BACKENDS
    from multistyle.backend.loader import spec_of

    from multistyle.optim import offered

    rows = ["# Backends\n", "Generated from each backend's spec at build time. Every backend offers every optimizer; "
            "the last column says whose code computes each one: the framework's own class, or multistyle's "
            "(`multistyle.optim`, torch's formulas written once over the protocol).\n",
            "| backend | install | imports | native weight files | optimizers |", "|---|---|---|---|---|"]
    for name in sorted(BUILTIN_BACKENDS):
        spec = spec_of(name)
        optimizers = "<br>".join(f"{opt}: `{code}`" for opt, code in offered(spec.native_optimizers).items())
        rows.append(f"| `{name}` | `pip install 'multistyle[{spec.extra}]'` | {', '.join(spec.modules)} | "
                    f"{', '.join(f'`{s}`' for s in spec.weight_suffixes) or 'none (use `.npz`)'} | {optimizers} |")
    return "\n".join(rows) + "\n"


GENERATED = {"reference/cli.md": _cli_reference, "reference/backends.md": _backends_reference}


def on_files(files, config):
    os.environ.setdefault("COLUMNS", "100")  # argparse wraps help at the terminal's width
    for path, make in GENERATED.items():
        files.append(File.generated(config, path, content=make()))
    return files


def _maths() -> str:
    """The "same name, different maths" rows, from the table that compare, explain and serve render."""
    from multistyle.maths import MATHS

    rows = ["| what | the chapter's code | multistyle |", "|---|---|---|"]
    for _, title, chapter, ours in MATHS:
        rows.append(f"| {title} | {chapter} | {ours} |")
    return "\n".join(rows)


def on_page_markdown(markdown, page, config, files):
    if "<!-- multistyle:maths -->" in markdown:
        markdown = markdown.replace("<!-- multistyle:maths -->", _maths())
    if "<!-- multistyle:why-pixels-drift -->" in markdown:
        from multistyle.maths import WHY_PIXELS_DRIFT

        markdown = markdown.replace("<!-- multistyle:why-pixels-drift -->", WHY_PIXELS_DRIFT)
    if "<!-- multistyle:presets -->" in markdown:
        from multistyle.cli import presets_table

        rows = presets_table()
        table = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
        table += ["| " + " | ".join(f"`{cell}`" if i == 0 else cell for i, cell in enumerate(row)) + " |"
                  for row in rows[1:]]
        markdown = markdown.replace("<!-- multistyle:presets -->", "\n".join(table))
    return markdown
