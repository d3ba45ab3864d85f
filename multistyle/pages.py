"""One page renderer: every HTML page multistyle writes (compare, explain, the batch gallery) and the live page
of ``serve`` are built here, with one stylesheet.  The written pages are self-contained: no scripts, fonts or
remote resources; the live page loads one script, from its own server."""

from __future__ import annotations

import html
from typing import Iterable, Optional, Sequence

#: The one stylesheet.  Tables carry a class: ``numbers`` (figures, right-aligned), ``gallery`` (images,
#: centred), ``code`` and ``maths`` (the backends' code and the "same name, different maths" table).
STYLESHEET = (
    "body{font-family:sans-serif;margin:24px;max-width:1200px;color:#222}"
    "figure{display:inline-block;margin:6px;text-align:center;vertical-align:top}"
    "figure img{width:300px;image-rendering:pixelated;border:1px solid #ccc}figcaption{font-size:13px}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}"
    "th{background:#f3f3f3}"
    "table.numbers td,table.numbers th{text-align:right}"
    "table.numbers td:first-child,table.numbers th:first-child{text-align:left}"
    "table.gallery td,table.gallery th{padding:6px;text-align:center}table.gallery th{font-weight:normal}"
    "img.result{width:220px;border:1px solid #ddd}img.thumb{max-width:120px;max-height:120px}"
    ".failed{color:#a00;max-width:220px;text-align:left}.muted{color:#777}"
    ".note{background:#fff7e0;border-left:4px solid #e0b000;padding:8px 12px}"
    "pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}"
    "table.code,table.maths{width:100%}"
    "table.code td,table.code th,table.maths td,table.maths th{padding:6px;text-align:left}"
    "table.code th,table.maths th{width:14%}"
    ".what{font-weight:normal;color:#555;font-size:12px;margin-top:4px}.where{color:#666;font-size:11px}"
    ".hl pre{margin:2px 0 8px;padding:6px;white-space:pre-wrap;font-size:12px}"
)


def page(title: str, parts: Iterable[str], extra_css: str = "", scripts: Sequence[str] = ()) -> str:
    """A whole page: ``title`` as its title and first heading, then ``parts``; ``extra_css`` is generated
    CSS to add (Pygments' highlighting); ``scripts`` are same-origin script addresses (the live page's)."""
    tags = "".join(f"<script src='{html.escape(src)}' defer></script>" for src in scripts)
    head = (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLESHEET}{extra_css}</style>{tags}</head><body>")
    return "\n".join([head, f"<h1>{html.escape(title)}</h1>", *parts, "</body></html>"])


def megabytes(value: Optional[int]) -> str:
    """Bytes as ``123 MB``, or ``n/a``."""
    return "n/a" if value is None else f"{value / 2 ** 20:.0f} MB"
