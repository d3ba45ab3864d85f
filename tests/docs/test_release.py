"""The release: one version source, a changelog that keeps a changelog, a long description whose links work on a
package index, and the wheel tox builds holding what a user needs (tools/release.py checks the same, and more,
in ``python3 -m tox -e package``).  Framework-free and quick."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import zipfile
from pathlib import Path

import pytest

import multistyle
from multistyle.cli import main
from support import REPOSITORY
from support.needs import require


_spec = importlib.util.spec_from_file_location("multistyle_release", REPOSITORY / "tools" / "release.py")
RELEASE = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(RELEASE)
SETUP = RELEASE.setup_module()
CHANGELOG = (REPOSITORY / "CHANGELOG.md").read_text(encoding="utf-8")


def test_the_version_is_one_and_the_metadata_and_the_cli_say_it(capsys):
    assert importlib.metadata.version("multistyle") == multistyle.__version__
    assert RELEASE.source_version() == multistyle.__version__
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"multistyle {multistyle.__version__}"


def test_the_changelog_keeps_a_changelog():
    versions = RELEASE.changelog_versions(CHANGELOG)
    assert versions[0] == "Unreleased", versions
    assert multistyle.__version__ in versions, f"CHANGELOG.md has no section for {multistyle.__version__}"
    released = [tuple(int(part) for part in v.split(".")) for v in versions[1:]]
    assert released == sorted(released, reverse=True), "releases are listed newest first"
    for version in versions[1:]:
        assert re.search(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", CHANGELOG, re.M), version
    kinds = set(re.findall(r"^### (.+)$", CHANGELOG, re.M))
    assert kinds <= {"Breaking changes", "Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds
    first = CHANGELOG.split(f"## [{multistyle.__version__}]")[1].split("\n## [")[0]
    assert "### Breaking changes" in first and "### Added" in first


PLANTED = """# Title

![a picture](docs/serve.png)

See [Getting started](docs/getting-started.md#offline) and [the site](https://example.org/x), or
[`docs/`](docs/index.md), <img src="docs/clamp.png"> and [here](#title).

[ref]: docs/security.md

```sh
echo "[not a link](docs/x.md)"
```
"""


def test_the_finder_finds_each_kind_of_relative_link_and_spares_code_and_addresses():
    assert SETUP.relative_targets(PLANTED) == ["docs/serve.png", "docs/getting-started.md#offline", "docs/index.md",
                                               "#title", "docs/security.md", "docs/clamp.png"]


def test_the_long_description_has_no_relative_link_without_a_base_and_absolute_ones_with_it():
    planted = PLANTED.replace('<img src="docs/clamp.png"> and ', "").replace("[ref]: docs/security.md\n", "")
    plain = SETUP.long_description(planted)
    assert SETUP.relative_targets(plain) == []
    assert "serve.png" not in plain and "a picture" not in plain  # the image and its line are gone
    assert "See Getting started (`docs/getting-started.md`) and [the site](https://example.org/x)" in plain
    assert "`docs/`, here." in plain  # a text naming its path already, an anchor of the page: the text alone
    assert 'echo "[not a link](docs/x.md)"' in plain  # code untouched
    based = SETUP.long_description(planted, "https://host/o/multistyle/blob/v1/")
    assert SETUP.relative_targets(based) == []
    assert "![a picture](https://host/o/multistyle/blob/v1/docs/serve.png)" in based
    assert "[Getting started](https://host/o/multistyle/blob/v1/docs/getting-started.md#offline)" in based


def test_the_readmes_own_description_has_no_relative_link():
    readme = (REPOSITORY / "README.md").read_text(encoding="utf-8")
    assert SETUP.relative_targets(readme), "the README's links stay relative in the checkout"
    assert SETUP.relative_targets(SETUP.long_description(readme, SETUP.URL_BASE)) == []


def _wheel(path, description, extra=(), left_out=()):
    metadata = (f"Metadata-Version: 2.4\nName: multistyle\nVersion: {multistyle.__version__}\n"
                f"Description-Content-Type: text/markdown\n\n{description}")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"multistyle-{multistyle.__version__}.dist-info/METADATA", metadata)
        for name in (*RELEASE.MUST_HOLD, *RELEASE.core_modules(), *extra):
            if name not in left_out:
                archive.writestr(name, "")
    return path


def test_the_wheel_check_finds_a_relative_link_missing_files_tests_and_a_missing_changelog_section(tmp_path):
    name = f"multistyle-{multistyle.__version__}-py3-none-any.whl"
    for folder in ("good", "bad"):
        (tmp_path / folder).mkdir()
    good = _wheel(tmp_path / "good" / name, "# multistyle\n")
    assert RELEASE.wheel_problems(good, multistyle.__version__, CHANGELOG) == []
    # A package of the core left out of pyproject.toml's list (multistyle.nets was, once): its modules are missing.
    bad = _wheel(tmp_path / "bad" / name, "See [the guide](docs/guides/run.md).\n", extra=("tests/test_x.py",),
                 left_out=("multistyle/nets/transformer.py",))
    problems = " ".join(RELEASE.wheel_problems(bad, multistyle.__version__, CHANGELOG.replace("## [Unreleased]", "")))
    for found in ("docs/guides/run.md", "holds tests: tests/test_x.py", "first section is not ## [Unreleased]",
                  "lacks multistyle/nets/transformer.py"):
        assert found in problems, problems
    assert "no section" in " ".join(RELEASE.wheel_problems(good, "9.9.9", CHANGELOG))


def test_the_wheel_tox_built_holds_what_a_user_needs_and_its_description_works_on_an_index():
    """The wheel that this tox run built and installed (tox names it in TOX_PACKAGE)."""
    require("package")
    wheel = Path(os.environ["TOX_PACKAGE"].split(os.pathsep)[0])
    assert RELEASE.wheel_problems(wheel, multistyle.__version__, CHANGELOG) == []
    description = RELEASE.wheel_metadata(wheel).get_payload()
    assert "## On a fresh machine" in description and "python3 -m tox" in description
