"""``examples/compare_frameworks.ipynb`` runs from top to bottom, at a tiny size with synthetic weights.

Executed with nbclient in a Jupyter kernel of this environment (the tox env
``all``, where ``MULTISTYLE_TEST_REQUIRE=...,notebook`` makes a missing nbclient
or ipykernel a failure rather than a skip); any cell that raises fails the test.
"""

from __future__ import annotations

import re

import pytest

from support import REPOSITORY
from support.needs import INSTALLED

NOTEBOOK = REPOSITORY / "examples" / "compare_frameworks.ipynb"


def _text(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.get("output_type") == "stream")


@pytest.mark.notebook
def test_compare_frameworks_notebook_runs_every_cell(tmp_path):
    if not INSTALLED:
        pytest.skip("no framework installed")
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1
    examples = NOTEBOOK.parent
    parameters[0].source = (f"SIZE = (16, 24)\nEPOCHS = 3\nWEIGHTS = 'random:0'\n"
                            f"CONTENT = {str(examples / 'content.jpg')!r}\nSTYLE = {str(examples / 'style.jpg')!r}\n")
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError if any cell raises
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    printed = "\n".join(_text(cell) for cell in code)
    for name in INSTALLED:
        assert re.search(rf"^{name}\s+final loss [0-9.e+-]+$", printed, re.M), printed
        assert re.search(rf"^{name}\s+[0-9.]+ ms per iteration$", printed, re.M)
    pairs = re.findall(r"^(\w+) vs (\w+): losses within ([0-9.e+-]+) \(relative\)", printed, re.M)
    assert len(pairs) == len(INSTALLED) * (len(INSTALLED) - 1) // 2
    # The frameworks agree: within DESIGN's 2 % for runs.  Three Adam steps at 16x24 drift by up to 2.3e-3
    # (paddle vs torch, torch 2.15 / paddle 3.3.1 / mxnet 1.9.1), so the 1e-3 once used here failed with
    # newer releases; a wrong objective or optimizer differs from the first loss on, by far more.
    assert all(float(difference) < 2e-2 for _, _, difference in pairs)
    pictures = sum(1 for cell in code for output in cell.outputs if "image/png" in output.get("data", {}))
    assert pictures >= 4  # the two inputs, the results, the loss curves
