"""The README as a front page, and the rule that nothing a reader sees names one of the project's own issues.
Framework-free and quick: they run in every env."""

from __future__ import annotations

import json
import re

import pytest

from support import REPOSITORY

#: "issue 21", "issues 9 and 10", "#12": a number of this project's tracker.  "owner/repo#12" (another
#: project's thread, cited) and "[#12](https://...)" (a link to one) are citations, not ours.
ISSUE_NUMBER = re.compile(r"\b(?:issues?|tickets?)\s*#?\s*\d+|(?<![\w/.\[-])#\d+\b", re.IGNORECASE)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _reader_sources():
    """Everything the docs site and the README show, as written: markdown pages and the tutorial's cells."""
    yield REPOSITORY / "README.md", (REPOSITORY / "README.md").read_text(encoding="utf-8")
    for page in sorted((REPOSITORY / "docs").rglob("*.md")):
        yield page, page.read_text(encoding="utf-8")
    notebook = json.loads((REPOSITORY / "docs" / "tutorial.ipynb").read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        yield REPOSITORY / "docs" / "tutorial.ipynb", "".join(cell["source"])


def test_the_pattern_finds_issue_numbers_and_spares_citations():
    assert ISSUE_NUMBER.search("as issue 21 asks") and ISSUE_NUMBER.search("see #12.")
    assert ISSUE_NUMBER.search("Issues 9 and 10")
    assert not ISSUE_NUMBER.search("pytorch/tutorials#143") and not ISSUE_NUMBER.search("[#143](https://x/143)")


def test_nothing_a_reader_sees_names_an_issue_number():
    found = [f"{path.relative_to(REPOSITORY)}: {match.group(0)!r}"
             for path, text in _reader_sources() for match in ISSUE_NUMBER.finditer(text)]
    assert not found, "issue numbers in the README or docs (say what changed, not which issue):\n" + "\n".join(found)


def test_the_readme_is_a_front_page():
    text = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 120, f"README.md has {len(lines)} lines; the manual belongs in docs/"
    marks = sorted(set(re.findall(r"[\u2020\u2021\u00a7\u00b6*]+(?=\s|$|\))", re.sub(r"`[^`]*`|\*\*", "", text))))
    assert not marks, f"footnote marks in README.md ({marks}): the details belong on the benchmark pages"
    # The two commands for a fresh machine: the first installs and runs the bundled example; the second is
    # exactly the test command that .ci/run runs.
    commands = [line for line in lines if line.startswith("python3 -m pip install")]
    assert len(commands) == 2, commands
    assert "multistyle run" in commands[0] and "examples/content.jpg" in commands[0]
    ci = (REPOSITORY / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci == commands[1], (ci, commands[1])


#: The README's own links and images (outside addresses are not fetched: no network beyond the package index).
LOCAL_LINKS = sorted({m.group(1) for m in LINK.finditer((REPOSITORY / "README.md").read_text(encoding="utf-8"))
                      if not re.match(r"https?://", m.group(1))})


@pytest.mark.parametrize("target", LOCAL_LINKS)
def test_every_link_of_the_readme_reaches_something(target):
    path = target.split("#")[0]
    assert (REPOSITORY / path).exists(), f"README.md links to {target}, which is not in the repository"


def test_the_tutorial_page_is_the_notebook():
    page = REPOSITORY / "docs" / "tutorial.ipynb"
    assert page.resolve() == (REPOSITORY / "examples" / "compare_frameworks.ipynb").resolve()
