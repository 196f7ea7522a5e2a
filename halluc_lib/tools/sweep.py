"""The seed sweep: execute pages with papermill at several seeds and commit what they measured.

``make seeds`` runs ``python -m halluc_lib.tools.sweep``: every page of the book (or ``--pages``) at seeds 0–4
(``--seeds``), at ``--scale`` on ``--device``, and merges one record per run into ``data/sweeps/<page>.json``
(:mod:`halluc_lib.core.sweeps`). Re-running some pages at some seeds replaces only those runs. A run whose claim
fails is kept, with the failure, so the robustness page shows it.

Within one seed, pages run in reading order, so a page reuses the models earlier pages cached (as in the build).
Seeds are independent, so with ``--jobs N`` N seeds run at once, each in its own process pinned to its share of
the CPU cores. The default is one job per 8 cores: on a 2-core machine one page runs at a time (two torch
processes on 2 cores slow each other about twentyfold).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from ..core import sweeps
from ..core.claims import RECORD_ENV
from ..core.execute import execute_page
from ..core.files import atomic_write_text
from ..core.runtime import check_positive_int, check_scale
from ..core.warm_kernel import warm_kernels
from .build import BUILD, ROOT, experiment_notebooks

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


COMMIT_ENV = "HALLUC_COMMIT"


def git_commit(root: Path = ROOT) -> str | None:
    """The commit the working tree is at; ``+`` marks uncommitted changes. Outside a git checkout (a copy of the
    tree on a borrowed machine), ``$HALLUC_COMMIT`` if set, else ``None``."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get(COMMIT_ENV) or None
    return commit + ("+" if dirty.strip() else "")


@contextmanager
def _locked(path: Path):
    """An exclusive lock beside ``path``: parallel seeds update the same page's file one at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_key(record: dict) -> tuple:
    """What identifies a run in a sweep file (and orders the file): scale, device kind, seed."""
    return record.get("scale", ""), sweeps.device_kind(record.get("device")), record.get("seed", 0)


def merge_run(page: str, record: dict, sweep_dir: Path = sweeps.SWEEP_DIR) -> Path:
    """Add one run to the page's sweep file, replacing a run at the same seed, scale and device kind; atomic."""
    path = sweeps.sweep_path(page, sweep_dir)
    with _locked(path):
        data = sweeps.load_sweep(page, sweep_dir)
        kept = [r for r in data["runs"] if _run_key(r) != _run_key(record)]
        kept.append(record)
        kept.sort(key=_run_key)
        atomic_write_text(path, json.dumps({"page": page, "runs": kept}, indent=1) + "\n")
    return path


def run_page(notebook: Path, *, seed: int, scale: str, device: str, out: Path, kernel: str = "python3") -> dict:
    """Execute one page at one seed; return its sweep record (written by the page's claims, completed here)."""
    page = notebook.stem
    record_path = out / "records" / f"{page}.json"
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.unlink(missing_ok=True)
    notebook_sha256 = sweeps.code_cells_sha256(notebook)  # hashed before the run: the code that ran
    os.environ[RECORD_ENV] = str(record_path)
    start = time.perf_counter()
    error = None
    try:
        execute_page(
            notebook,
            out / f"{page}.ipynb",
            parameters={"seed": seed, "scale": scale, "device": device},
            kernel_name=kernel,
        )
    except Exception as exc:  # a failing claim or a broken cell: recorded, the sweep goes on
        error = str(exc).strip().splitlines()[-1][:500] if str(exc).strip() else type(exc).__name__
    finally:
        os.environ.pop(RECORD_ENV, None)
    wall = time.perf_counter() - start
    record = json.loads(record_path.read_text()) if record_path.exists() else {"page": page, "claims": []}
    record.setdefault("seed", seed)
    record.setdefault("scale", scale)
    record.setdefault("device", device)
    record["notebook_sha256"] = notebook_sha256  # the library's hash comes with the record, from the kernel
    record.update({"commit": git_commit(), "wall_seconds": wall, "error": error})
    return record


def sweep_seed(
    seed: int,
    pages: list[Path],
    *,
    scale: str,
    device: str,
    cores: list[int] | None,
    sweep_dir: Path,
    warm: bool = True,
):
    """Run ``pages`` in order at one seed (pinned to ``cores`` when given); merge each record as it finishes.
    ``warm=False`` starts every page in an ordinary kernel instead of a fork of a warm one."""
    if cores:
        os.sched_setaffinity(0, cores)  # the kernels papermill starts inherit it; runtime.setup counts these cores
    out = BUILD / "sweep" / scale / f"seed{seed}"
    summary = []
    with warm_kernels(enabled=warm) as kernel:  # started after the pinning above: its kernels inherit the cores
        for nb in pages:
            record = run_page(nb, seed=seed, scale=scale, device=device, out=out, kernel=kernel)
            merge_run(nb.stem, record, sweep_dir)
            failed = [c["name"] for c in record["claims"] if not c["passed"]]
            status = "FAILED " + "; ".join(failed) if failed else "ok"
            status = "error: " + record["error"] if record["error"] else status
            print(f"seed {seed} {nb.stem}: {record['wall_seconds']:.0f} s {status}", flush=True)
            summary.append((nb.stem, seed, record["wall_seconds"], status))
    return summary


def select_pages(names: list[str] | None, root: Path = ROOT) -> list[Path]:
    """The notebooks to sweep (those that check claims), in reading order; ``names`` are page slugs such as
    ``ch02_6_conflicts``."""
    every = experiment_notebooks(root)
    if not names:
        return every
    known = {nb.stem: nb for nb in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"pages: unknown {unknown}; accepted values: {sorted(known)}")
    return [nb for nb in every if nb.stem in names]


def core_groups(jobs: int, cores: list[int]) -> list[list[int]]:
    """Split the usable cores into ``jobs`` equal groups (one per parallel seed)."""
    if jobs > len(cores):
        raise ValueError(f"jobs must be at most the {len(cores)} usable cores; got {jobs}")
    size = len(cores) // jobs
    return [cores[i * size : (i + 1) * size] for i in range(jobs)]


def sweep(
    seeds=DEFAULT_SEEDS,
    *,
    scale: str = "quick",
    device: str = "auto",
    pages: list[str] | None = None,
    jobs: int | None = None,
    sweep_dir: Path = sweeps.SWEEP_DIR,
    warm: bool = True,
) -> list[tuple]:
    """Execute ``pages`` at every seed and merge the records into the sweep files; return (page, seed, s, status).
    ``warm=False``: ordinary kernels (see :func:`sweep_seed`)."""
    scale = check_scale(scale)
    seeds = [check_positive_int("seeds", s, allow_zero=True) for s in seeds]
    chosen = select_pages(pages)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    jobs = check_positive_int("jobs", jobs if jobs is not None else max(1, len(cores) // 8))
    jobs = min(jobs, len(seeds))
    if jobs == 1:
        return [
            row
            for s in seeds
            for row in sweep_seed(s, chosen, scale=scale, device=device, cores=None, sweep_dir=sweep_dir, warm=warm)
        ]
    groups = core_groups(jobs, cores)
    results = []
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(
                sweep_seed,
                s,
                chosen,
                scale=scale,
                device=device,
                cores=groups[i % jobs],
                sweep_dir=sweep_dir,
                warm=warm,
            )
            for i, s in enumerate(seeds)
        ]
        for f in futures:
            results.extend(f.result())
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.sweep", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--pages", nargs="*", default=None, help="page slugs, e.g. ch02_6_conflicts (default: all)")
    parser.add_argument("--jobs", type=int, default=None, help="seeds run at once (default: one per 8 cores)")
    parser.add_argument("--cold-kernels", action="store_true", help="ordinary kernels, not forks of a warm one")
    args = parser.parse_args(argv)
    results = sweep(
        args.seeds, scale=args.scale, device=args.device, pages=args.pages, jobs=args.jobs, warm=not args.cold_kernels
    )
    bad = [r for r in results if r[3] != "ok"]
    print(f"{len(results) - len(bad)} of {len(results)} runs passed")
    return 1 if bad else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
