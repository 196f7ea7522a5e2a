"""A page runs alone: the library's wheel installed into a fresh virtual environment, one page copied into an empty
folder and executed there with papermill (marked standalone; `make standalone`, part of `make test`).

This is what a reader does who downloads one notebook from the site: nothing of the repository is there, only the
installed library. `make execute` cannot see that case — its pages run from the checkout, next to `data/`, with
an editable install — so a page that reads a file through a repository path, or shipped data the wheel does not
carry, passes there and breaks for the reader. Here the wheel is built from a copy of the sources, installed into
a new venv (torch first, pinned as `make setup` pins it, then the wheel, papermill and ipykernel, all under
constraints.txt), and each page in :data:`PAGES` runs in its own empty folder with an empty model cache. The
install cell then finds the library and does nothing.

Two cells are added to the copy, around the page's own: the first installs an audit hook that records every path
the kernel opens or lists, the last reports the kernel's interpreter, where the library was imported from and
which of those paths lie in the repository (none may) or in the installed package's shipped data (the page's own
must). The pages: chapter 2.1, which reads its committed sweep from the package and needs chapter 1's model, which
with an empty cache it must train itself, and chapter 5.3, which checks its simulation against the shipped log
and prints whether the shipped copy was found.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from halluc_lib.tools import install

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.standalone

#: Each page run alone, and what its run must show: the shipped files (relative to the package's ``shipped/``) it
#: must read from the installed package, text its outputs must contain, text they must not, and whether it must leave
#: a trained model in its cache (empty before the run).
PAGES = {
    "ch02_1_exposure": {
        "reads": ["sweeps/ch02_1_exposure.json"],
        "prints": [r"trained \d+ steps = [\d.]+ passes over the corpus in \d+ s"],
        "never": ["loaded from the cache"],  # the cache is empty: the page trains chapter 1's model itself
        "caches": True,  # and stores it there, for the next page
    },
    "ch05_3_recommender": {
        "reads": ["recsys_popularity_seed0.json", "sweeps/ch05_3_recommender.json"],
        "prints": [r"identical to the shipped recsys_popularity_seed0\.json"],
        "never": ["no shipped copy"],
    },
}
#: The longest a page may take (it takes under two minutes on two cores).
PAGE_TIMEOUT_S = 1200
#: Environment variables that would point the run back at the checkout's environment; and every ``HALLUC_*``
#: (`make` points the cache and the training logs into _build/), of which the run sets only its own cache.
LEAKS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "JUPYTER_PATH")
PROBE_MARK = "STANDALONE-PROBE "

# The first added cell: record every path the kernel opens (files, and source files it imports) or lists
# (directories searched for imports). An audit hook must never raise, or it would break the call it watches.
AUDIT_CELL = """\
import os, sys

_standalone_paths = set()


def _standalone_audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args:
        try:
            _standalone_paths.add(os.path.abspath(os.fsdecode(args[0])))
        except Exception:
            pass  # a file descriptor, or None for the current directory


sys.addaudithook(_standalone_audit)
"""

# The last added cell: what the run used, as one line of JSON; the repository's path is filled in.
PROBE_CELL = """\
import json, os, sys
import halluc_lib
from halluc_lib.core.files import DATA_DIR

_root, _data = os.path.realpath({root!r}), os.path.realpath(DATA_DIR)
_inside = lambda path, folder: path == folder or path.startswith(folder + os.sep)
_used = {{os.path.realpath(p) for p in _standalone_paths}}
_modules = {{os.path.realpath(m.__file__) for m in list(sys.modules.values()) if getattr(m, "__file__", None)}}
print({mark!r} + json.dumps({{
    "prefix": os.path.realpath(sys.prefix),
    "executable": sys.executable,
    "library": os.path.realpath(halluc_lib.__file__),
    "data_dir": _data,
    "data_dir_is_link": os.path.islink(DATA_DIR),
    "repository_paths": sorted(p for p in _used if _inside(p, _root)),
    "repository_modules": sorted(m for m in _modules if _inside(m, _root)),
    "repository_on_sys_path": [p for p in sys.path if p and _inside(os.path.realpath(p), _root)],
    "shipped_read": sorted(os.path.relpath(p, _data) for p in _used if _inside(p, _data) and os.path.isfile(p)),
}}))
"""


def torch_requirement() -> list[str]:
    """pip's arguments for torch, as `make setup` installs it: ``$TORCH`` when set (CI adds PyTorch's CPU index
    there), else the Makefile's pin."""
    if os.environ.get("TORCH"):
        return shlex.split(os.environ["TORCH"])
    return shlex.split(install.makefile_variable("TORCH"))


def run(command: list, timeout: float = 1800, **kwargs) -> float:
    """Run ``command``, failing the test with its output if it fails; return its wall time in seconds."""
    start = time.perf_counter()
    command = [str(c) for c in command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    if done.returncode:
        pytest.fail(f"{shlex.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return time.perf_counter() - start


def code_cell(cell_id: str, source: str) -> dict:
    """A code cell added to the copied page, tagged ``standalone``."""
    return {
        "cell_type": "code",
        "execution_count": None,
        "id": cell_id,
        "metadata": {"tags": ["standalone"]},
        "outputs": [],
        "source": source.splitlines(keepends=True),
    }


def outputs_text(notebook: dict) -> str:
    """Everything the executed cells printed or displayed as text."""
    parts = []
    for cell in notebook["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain") or ""
            parts.append("".join(text) if isinstance(text, list) else text)
    return "\n".join(parts)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The library's wheel, built from a copy of the sources: setuptools writes ``build/`` and ``*.egg-info``
    beside them, and a ``build/lib`` left from an earlier build would carry deleted modules into the wheel.
    ``halluc_lib/shipped`` stays a link to ``data/`` in the copy, as in the repository."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.lock")
    shutil.copytree(ROOT / "halluc_lib", src / "halluc_lib", symlinks=True, ignore=skip)
    shutil.copytree(ROOT / "data", src / "data", ignore=skip)
    # offline: setuptools comes from this environment (torch requires setuptools>=77, as pyproject.toml does)
    seconds = run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", dist, src])
    print(f"wheel built in {seconds:.0f} s")
    (built,) = dist.glob("halluc_lib-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new virtual environment with the wheel, papermill and ipykernel: torch first, pinned (an unpinned torch
    would be a CUDA build), then the rest, all at constraints.txt's versions. pip's cache and configured indexes
    are used as they are. ``--no-compile``: byte-compiling every installed module took longer than the install
    itself (66 s in all against 40 s on two cores), while the kernel compiles the few it imports in under a
    second."""
    root = tmp_path_factory.mktemp("venv")
    python = root / "bin" / "python"
    pip = [python, "-m", "pip", "install", "-q", "--no-compile", "-c", ROOT / "constraints.txt"]
    times = {
        "venv": run([sys.executable, "-m", "venv", root]),
        "torch": run(pip + torch_requirement()),
        "wheel, papermill, ipykernel": run(pip + [wheel, "papermill", "ipykernel"]),
    }
    print("fresh venv: " + ", ".join(f"{step} {seconds:.0f} s" for step, seconds in times.items()))
    return root


def test_the_wheel_carries_every_shipped_file(wheel):
    """Shipped data is package data: every dataset, data card and sweep file in ``data/`` is in the wheel, as a
    file with the same bytes (setuptools follows the ``halluc_lib/shipped`` link), and nothing else is there."""
    expected = {
        p.relative_to(ROOT / "data").as_posix(): p.read_bytes()
        for pattern in ("*.json", "*.md", "sweeps/*.json")
        for p in (ROOT / "data").glob(pattern)
    }
    with zipfile.ZipFile(wheel) as zf:
        shipped = {
            name.removeprefix("halluc_lib/shipped/"): zf.read(name)
            for name in zf.namelist()
            if name.startswith("halluc_lib/shipped/")
        }
    assert "exposure_world_seed0.json" in shipped and "sweeps/ch02_1_exposure.json" in shipped
    assert shipped.keys() == expected.keys()
    assert all(shipped[name] == expected[name] for name in expected), "a shipped file differs from data/"


def downloadable(page: str) -> Path:
    """The notebook a reader downloads: the built site's copy (its download button serves
    ``_sources/book/<page>.ipynb``, the executed notebook, install cell included) once ``make html`` has run, and
    the page's source before that."""
    site = ROOT / "_build" / "html" / "_sources" / "book" / f"{page}.ipynb"
    return site if site.exists() else ROOT / "book" / f"{page}.ipynb"


@pytest.mark.parametrize("page", PAGES)
def test_a_page_runs_alone_from_the_installed_wheel(page, venv, tmp_path):
    """The page as the site offers it for download, alone in an empty folder, executes without error from the
    fresh venv's kernel with an empty model cache; it reads its shipped data from the installed package and nothing
    from the repository."""
    folder, cache, executed = tmp_path / "page", tmp_path / "cache", tmp_path / f"{page}.executed.ipynb"
    for path in (folder, cache):
        path.mkdir()
    notebook = json.loads(downloadable(page).read_text())
    notebook["cells"] = [
        code_cell("standalone-audit", AUDIT_CELL),
        *notebook["cells"],
        code_cell("standalone-probe", PROBE_CELL.format(root=str(ROOT), mark=PROBE_MARK)),
    ]
    (folder / f"{page}.ipynb").write_text(json.dumps(notebook))

    env = {k: v for k, v in os.environ.items() if k not in LEAKS and not k.startswith("HALLUC_")}
    outside = [p for p in env.get("PATH", "").split(os.pathsep) if p and not Path(p).resolve().is_relative_to(ROOT)]
    env |= {
        "PATH": os.pathsep.join([str(venv / "bin"), *outside]),  # `make` puts the checkout's .venv/bin first
        "HALLUC_CACHE": str(cache),
        "PYTHONHASHSEED": "0",
        # no user-level kernelspec or IPython start-up file: the kernel is the venv's python3, started as is
        "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"),
        "IPYTHONDIR": str(tmp_path / "ipython"),
    }
    papermill = [venv / "bin" / "python", "-m", "papermill", f"{page}.ipynb", executed, "-k", "python3"]
    seconds = run(papermill + ["--cwd", folder, "--no-progress-bar"], PAGE_TIMEOUT_S, cwd=folder, env=env)
    print(f"{page} ran alone in {seconds:.0f} s")

    result = json.loads(executed.read_text())
    errors = [out for cell in result["cells"] for out in cell.get("outputs", []) if out["output_type"] == "error"]
    assert not errors, errors
    (install,) = [c for c in result["cells"] if "install" in c["metadata"].get("tags", [])]
    assert install["outputs"] == [], "the install cell ran %pip: the library was not found"
    text = outputs_text(result)
    (line,) = [line for line in text.splitlines() if line.startswith(PROBE_MARK)]
    probe = json.loads(line.removeprefix(PROBE_MARK))

    # the kernel was the fresh venv's interpreter, and the library and its data came from its installed wheel
    assert probe["prefix"] == os.path.realpath(venv), probe["executable"]
    assert Path(probe["library"]).is_relative_to(os.path.realpath(venv))
    assert Path(probe["data_dir"]).is_relative_to(os.path.realpath(venv)) and not probe["data_dir_is_link"]
    # nothing of the repository was opened, listed, imported or on the import path
    assert probe["repository_paths"] == []
    assert probe["repository_modules"] == [] and probe["repository_on_sys_path"] == []
    # the page read its shipped data from the package, and its outputs say what they must
    expected = PAGES[page]
    assert set(expected["reads"]) <= set(probe["shipped_read"]), probe["shipped_read"]
    for pattern in expected["prints"]:
        assert re.search(pattern, text), f"{page}: no output matches {pattern!r}"
    for phrase in expected["never"]:
        assert phrase not in text, f"{page}: the output says {phrase!r}"
    if expected.get("caches"):
        assert any(cache.iterdir()), f"{page}: nothing trained into the empty cache"
