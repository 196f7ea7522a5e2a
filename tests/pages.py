"""Writing tiny pages for the tests that execute notebooks (papermill, warm kernels, the seed sweep)."""

from __future__ import annotations

import nbformat


def write_page(path, parameters: str, *sources: str):
    """Write a notebook to ``path``: a ``parameters``-tagged cell holding ``parameters``, then one code cell per
    source; return ``path``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    cells = [nbformat.v4.new_code_cell(s) for s in (parameters, *sources)]
    cells[0].metadata["tags"] = ["parameters"]
    nb.cells = cells
    nbformat.write(nb, path)
    return path
