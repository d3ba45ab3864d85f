"""The package's long description: README.md as a package index shows it (everything else is in pyproject.toml).

README.md's relative links and images work in the checkout and on a repository host; on a package index they
point nowhere.  The long description is README.md with each of them rewritten:

- once the project has a public address, set ``URL_BASE`` (``{version}`` is replaced by the package's version,
  so that the links of a release reach the files of its tag): a relative target becomes ``URL_BASE + target``;
- until then (``URL_BASE`` empty), a relative link becomes its text, followed by the path it named where the
  text does not already say it, and a relative image is left out (its line too, when nothing else is on it).

Addresses with a scheme (``https:``, ``mailto:``) are kept; fenced code blocks are left as they are.
``relative_targets`` finds what is left: the release check (``tools/release.py``) and the tests run it on
the description of the built wheel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

#: Where the repository's files are published, e.g. "https://host/owner/multistyle/blob/v{version}/" (no public
#: address yet: empty).
URL_BASE = ""

#: An inline link or image: ``[text](target)`` / ``![alt](target)``, with an optional "title".
INLINE = re.compile(r"(?P<bang>!?)\[(?P<text>(?:[^\[\]]|\[[^\[\]]*\])*)\]\((?P<target>[^()\s]+)(?P<title>\s+\"[^\"]*\")?\)")
#: A link reference definition: ``[label]: target``.
DEFINITION = re.compile(r"^ {0,3}\[(?P<label>[^\]]+)\]:\s*(?P<target>\S+).*$", re.M)
#: HTML ``src=`` and ``href=`` attributes.
ATTRIBUTE = re.compile(r"\b(?:src|href)\s*=\s*[\"'](?P<target>[^\"']*)[\"']", re.I)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def is_relative(target: str) -> bool:
    """Whether a link's target depends on where the page is shown (a path, or an anchor of this page)."""
    return not SCHEME.match(target)


def _outside_code(text: str):
    """``text`` in pieces: (piece, is_code), fenced code blocks being code."""
    at = 0
    for fence in FENCE.finditer(text):
        yield text[at:fence.start()], False
        yield fence.group(0), True
        at = fence.end()
    yield text[at:], False


def relative_targets(text: str) -> List[str]:
    """Every relative link or image target in markdown ``text`` outside code blocks, in order."""
    found = []
    for piece, code in _outside_code(text):
        if code:
            continue
        for pattern in (INLINE, DEFINITION, ATTRIBUTE):
            found += [m.group("target") for m in pattern.finditer(piece) if is_relative(m.group("target"))]
    return found


def _rewrite_inline(match: "re.Match[str]", base: str) -> str:
    bang, text, target = match.group("bang"), match.group("text"), match.group("target")
    if not is_relative(target):
        return match.group(0)
    if base:
        return f"{bang}[{text}]({base}{target}{match.group('title') or ''})"
    if bang:
        return ""
    path = target.split("#")[0]
    return text if not path or path.rstrip("/").split("/")[0] in text else f"{text} (`{path}`)"


def long_description(readme: str, base: str = "") -> str:
    """README.md as a package index shows it: relative links made absolute under ``base``, or plain text."""
    out = []
    for piece, code in _outside_code(readme):
        if code:
            out.append(piece)
            continue
        lines = []
        for line in piece.split("\n"):
            rewritten = INLINE.sub(lambda m: _rewrite_inline(m, base), line)
            if base:
                rewritten = DEFINITION.sub(lambda m: m.group(0).replace(m.group("target"), base + m.group("target"))
                                           if is_relative(m.group("target")) else m.group(0), rewritten)
            if rewritten.strip() or not line.strip():
                lines.append(rewritten)
        out.append("\n".join(lines))
    return "".join(out)


def version(root: Path = Path(__file__).parent) -> str:
    """``multistyle.__version__``, read from its source without importing the package (the one version source)."""
    found = re.search(r'^__version__ = "([^"]+)"$', (root / "multistyle" / "__init__.py").read_text(encoding="utf-8"),
                      re.M)
    if not found:
        raise ValueError('multistyle/__init__.py: no line __version__ = "X.Y.Z"')
    return found.group(1)


if __name__ == "__main__":
    from setuptools import setup

    here = Path(__file__).parent
    setup(long_description=long_description((here / "README.md").read_text(encoding="utf-8"),
                                            URL_BASE.format(version=version())),
          long_description_content_type="text/markdown")
