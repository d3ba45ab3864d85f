"""The mutation check's baseline taken from the suite's own report (``mutation.py --passed``): a selection counts
as passing only where the report shows its tests passing; one it shows failing stops the check; one it lacks
runs as before.  Framework-free: a report written here."""

from __future__ import annotations

import importlib.util
import sys

from support import REPOSITORY

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="5">
<testcase classname="tests.core.test_controls" name="test_oracle[torch-avg pooling]" time="1"/>
<testcase classname="tests.core.test_controls" name="test_oracle[torch-luminance]" time="1"><failure message="x"/></testcase>
<testcase classname="tests.cli.test_serve" name="test_upload" time="1"/>
<testcase classname="tests.cli.test_serve" name="test_upload_twice" time="1"><skipped message="y"/></testcase>
<testcase classname="tests.cli.test_batch" name="test_key[size]" time="1"><error message="z"/></testcase>
</testsuite></testsuites>
"""


def _mutation_module():
    folder = str(REPOSITORY / "tests" / "support")
    sys.path.insert(0, folder)  # mutation.py imports its list from beside it
    try:
        spec = importlib.util.spec_from_file_location("multistyle_mutation_check", f"{folder}/mutation.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(folder)


def test_a_selection_passes_only_where_the_report_shows_its_tests_passing(tmp_path):
    mutation = _mutation_module()
    report = tmp_path / "tests.xml"
    report.write_text(REPORT)
    outcomes = mutation.outcomes_of(report)
    assert outcomes["tests/core/test_controls.py::test_oracle[torch-avg pooling]"] == "passed"
    assert outcomes["tests/cli/test_serve.py::test_upload_twice"] == "skipped"
    assert outcomes["tests/cli/test_batch.py::test_key[size]"] == "failed"  # an error counts as a failure
    assert mutation.covered("tests/core/test_controls.py::test_oracle[torch-avg pooling]", outcomes) == ["passed"]
    assert sorted(mutation.covered("tests/core/test_controls.py::test_oracle", outcomes)) == ["failed", "passed"]
    # a test's name is not the prefix of another's: test_upload does not cover test_upload_twice
    assert mutation.covered("tests/cli/test_serve.py::test_upload", outcomes) == ["passed"]
    assert sorted(mutation.covered("tests/cli/test_serve.py", outcomes)) == ["passed", "skipped"]
    assert mutation.covered("tests/cli/test_exit.py", outcomes) == []  # not in the report: the baseline runs it
