"""The book's reading order, from ``_toc.yml``: the one walk of the table of contents that the build, the sweep,
the student edition and the tests share. It imports only PyYAML (no torch), so light tools and tests can use it."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def toc_files(root: Path = ROOT) -> list[str]:
    """Every page named in ``_toc.yml``, in reading order, as paths without suffix (e.g. ``book/preface``)."""
    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))
            walk(entry.get("chapters"))

    walk(toc.get("parts"))
    walk(toc.get("chapters"))
    return files


def notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks of the book, in reading order."""
    root = Path(root)
    return [root / f"{f}.ipynb" for f in toc_files(root) if (root / f"{f}.ipynb").exists()]
