"""The committed seed sweep: every page executed at several seeds, one file per page in ``data/sweeps/``.

A page's prose never types a per-seed result or a run time: it quotes the spread over seeds from its own sweep
file with :func:`glue_spread` — the minimum, median and maximum of each value the page recorded with
:meth:`~halluc_lib.core.claims.Claims.measure`, and the median wall time. ``make seeds``
(:mod:`halluc_lib.tools.sweep`) writes the files; the robustness page shows every claim at every seed.

A sweep file is ``{"page": ..., "runs": [record, ...]}``; a record is the page's claims record (seed, scale,
device, versions, claims with baselines, measurements) plus the git commit, the wall time and the hashes of the
code it ran (:func:`source_hashes`: the page's code cells and the library modules the run imported), so a
record made by older code is shown as stale.
"""

from __future__ import annotations

import ast
import hashlib
import json
import statistics
import sys
import warnings
from pathlib import Path

import pandas as pd

from .files import DATA_DIR
from .report import glue

SWEEP_DIR = DATA_DIR / "sweeps"
LIBRARY_DIR = Path(__file__).resolve().parents[1]
#: The library layers a page's run depends on (``tools`` builds and sweeps but computes nothing a page shows).
LIBRARY_LAYERS = ("core", "datasets", "chapters")


def sweep_path(page: str, sweep_dir: Path = SWEEP_DIR) -> Path:
    """Where a page's sweep file lives: ``data/sweeps/<page>.json``."""
    return Path(sweep_dir) / f"{page}.json"


def load_sweep(page: str, sweep_dir: Path = SWEEP_DIR) -> dict:
    """A page's sweep file; ``{"page": page, "runs": []}`` when it has none yet."""
    path = sweep_path(page, sweep_dir)
    if not path.exists():
        return {"page": page, "runs": []}
    return json.loads(path.read_text())


def device_kind(device: str | None) -> str:
    """``cuda:0`` → ``cuda``: runs on any GPU of a kind are one group in the sweep."""
    return str(device or "cpu").split(":")[0]


def runs(page: str, scale: str = "quick", device: str | None = None, sweep_dir: Path = SWEEP_DIR) -> list[dict]:
    """The page's runs at ``scale`` (and on ``device``'s kind, if given), sorted by seed."""
    chosen = [
        r
        for r in load_sweep(page, sweep_dir)["runs"]
        if r.get("scale") == scale and (device is None or device_kind(r.get("device")) == device_kind(device))
    ]
    return sorted(chosen, key=lambda r: r["seed"])


def claim_table(page_runs: list[dict]) -> pd.DataFrame:
    """One row per (claim, seed): value, baseline, threshold, comparison, passed, kind."""
    rows = [{"seed": r["seed"], **c} for r in page_runs for c in r.get("claims", [])]
    columns = ["seed", "name", "value", "comparison", "threshold", "passed", "baseline", "kind"]
    return pd.DataFrame(rows, columns=columns)


def spread(values) -> dict[str, float]:
    """Minimum, median and maximum of a list of numbers."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("spread of no values")
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def measurement_spreads(page_runs: list[dict]) -> pd.DataFrame:
    """Min / median / max over seeds of every measurement the runs recorded, one row per name."""
    names = sorted({name for r in page_runs for name in r.get("measurements", {})})
    rows = {n: spread([r["measurements"][n] for r in page_runs if n in r.get("measurements", {})]) for n in names}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["min", "median", "max"])


def glue_spread(page: str, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR) -> pd.DataFrame:
    """Glue the spread over the page's swept seeds (at ``scale`` on ``device``'s kind) for its prose; return the
    table of spreads.

    Glued: ``sweep_<name>_min``, ``sweep_<name>_median``, ``sweep_<name>_max`` for every measurement,
    ``sweep_seeds`` (how many seeds) and ``sweep_seconds`` (median wall time of a run, for the "runs in about"
    box). When the page has no run at ``scale`` yet (its first sweep), it warns and glues nothing; the book's
    build then fails on the missing names, so a page is never published without its sweep.
    """
    page_runs = runs(page, scale, device, sweep_dir)
    if not page_runs:
        warnings.warn(
            f"no {scale}-scale runs of {page} in {sweep_path(page, sweep_dir)}: run `make seeds PAGES={page}`",
            stacklevel=2,
        )
        return measurement_spreads([])
    table = measurement_spreads(page_runs)
    for name, row in table.iterrows():
        for stat in ("min", "median", "max"):
            glue(f"sweep_{name}_{stat}", row[stat])
    glue("sweep_seeds", len(page_runs))
    glue("sweep_seconds", statistics.median(r["wall_seconds"] for r in page_runs))
    return table


#: The tag of a notebook's install cell (it installs the library where it is missing and computes nothing).
INSTALL_TAG = "install"


def code_cells_sha256(notebook: Path) -> str:
    """Hash of a notebook's code cells: what a run executes (editing the prose does not make a record stale, nor
    does the install cell, tagged :data:`INSTALL_TAG`, which computes nothing)."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    code = "\n\x1e\n".join(
        "".join(c["source"])
        for c in cells
        if c["cell_type"] == "code" and INSTALL_TAG not in c.get("metadata", {}).get("tags", [])
    )
    return hashlib.sha256(code.encode()).hexdigest()


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_fingerprint(source: bytes) -> bytes:
    """What of a module's source can change what it computes: its syntax tree without docstrings (comments and
    layout are not in the tree), so rewording the documentation does not make a record stale. Source that does
    not parse is fingerprinted as it is."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    return ast.dump(_without_docstrings(tree)).encode()


def loaded_library_modules() -> list[str]:
    """The library modules this process has imported (``core``, ``datasets`` and ``chapters`` layers): the
    library code a page's run actually used."""
    layers = tuple(f"halluc_lib.{layer}." for layer in LIBRARY_LAYERS)
    return sorted(name for name in sys.modules if name.startswith(layers))


def library_sha256(modules: list[str], library: Path = LIBRARY_DIR) -> str:
    """Hash of the code of ``modules`` (dotted names under ``halluc_lib``; a package hashes its ``__init__.py``),
    each as its :func:`code_fingerprint`; a module whose file is gone hashes as missing, so its record turns
    stale."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        relative = Path(*name.split(".")[1:])
        path = library / relative.with_suffix(".py")
        if not path.exists():
            path = library / relative / "__init__.py"
        code = code_fingerprint(path.read_bytes()) if path.exists() else b"<missing>"
        digest.update(name.encode() + b"\0" + code + b"\0")
    return digest.hexdigest()


def source_hashes(notebook: Path, modules: list[str], library: Path = LIBRARY_DIR) -> dict[str, str]:
    """The hashes a sweep record stores — of the page's code cells and of the library modules it ran — to tell
    later whether the code it ran has changed."""
    return {"notebook_sha256": code_cells_sha256(notebook), "library_sha256": library_sha256(modules, library)}


def is_stale(record: dict, notebook: Path, library: Path = LIBRARY_DIR) -> bool:
    """Whether a record was made by code other than today's: the page's code cells or one of the library
    modules the run imported (``record["library_modules"]``) has changed since."""
    current = source_hashes(notebook, record.get("library_modules", []), library)
    return any(record.get(key) != value for key, value in current.items())
