"""Executing a page: parameters injected, run from its folder, outputs kept, a failing cell named."""

from __future__ import annotations

import json

import pytest
from papermill.exceptions import PapermillExecutionError

from halluc_lib.core.execute import execute_page
from tests.pages import write_page


def test_parameters_reach_the_page_and_outputs_are_kept(tmp_path):
    page = write_page(tmp_path / "page.ipynb", "seed = 0", "import os\nprint(seed * 7, os.getcwd())")
    execute_page(page, tmp_path / "out.ipynb", parameters={"seed": 6})
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    printed = "".join(cells[-1]["outputs"][0]["text"])
    assert printed.split() == ["42", str(tmp_path)]  # the injected seed, run from the page's folder


def test_a_failing_cell_raises_and_the_output_shows_it(tmp_path):
    page = write_page(tmp_path / "page.ipynb", "seed = 0", "raise ValueError('claim failed')", "print('never')")
    with pytest.raises(PapermillExecutionError, match="claim failed"):
        execute_page(page, tmp_path / "out.ipynb")
    cells = json.loads((tmp_path / "out.ipynb").read_text())["cells"]
    assert not any(c.get("outputs") for c in cells if "never" in "".join(c["source"]))
