"""Building the book: execute every page with papermill, then build the HTML from the executed copies.

Used by ``make book`` and ``make test`` (``python -m halluc_lib.tools.build execute|html``), and by ``make pdf``
(``... build pdf``: the whole book as one PDF through XeLaTeX, from the same executed pages). Source notebooks are
stored without outputs; executed copies go to ``_build/executed`` and the site is built from a staged copy of
the book in ``_build/site``, so the working tree is never written to. Pages run one at a time: two torch
processes on a 2-core machine slow each other down about twentyfold.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..core import sweeps
from ..core.claims import RECORD_ENV
from ..core.execute import execute_page
from ..core.files import atomic_write_text
from ..core.findings import checks_claims
from ..core.sweeps import SWEEP_DIR
from ..core.warm_kernel import warm_kernels
from . import syllabus
from .toc import notebooks, toc_files  # noqa: F401 - toc_files: part of this module's interface (tests, PDF)

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "_build"
STATUS_MARKER = "<!-- status-table -->"
ROBUSTNESS_MARKER = "<!-- robustness-tables -->"


def experiment_notebooks(root: Path = ROOT) -> list[Path]:
    """The notebooks that run an experiment and check its claims, in reading order: the pages the seed sweep
    runs and the robustness page shows (the summary and the FAQ only quote these pages' sweeps)."""
    return [nb for nb in notebooks(root) if checks_claims(nb)]


def execute(
    out: Path = BUILD / "executed", root: Path = ROOT, parameters: dict | None = None, warm: bool = True
) -> list[dict]:
    """Execute every notebook with papermill, one at a time, into ``out``; return one record per page.

    Each page gets a fresh kernel; with ``warm`` (the default) it is forked from one process that imported torch,
    transformers and the plotting libraries once (:mod:`halluc_lib.core.warm_kernel`), instead of importing them
    again for every page.

    Each page's claims record is written to ``out/records/<page>.json`` (via ``$HALLUC_RECORD``).
    A failing page stops the build with papermill's error, which names the failing cell.
    """

    results = []
    with warm_kernels(enabled=warm) as kernel:
        for nb in notebooks(root):
            results.append(_execute_one(nb, root, out, parameters, kernel))
    return results


def _execute_one(nb: Path, root: Path, out: Path, parameters: dict | None, kernel: str) -> dict:
    rel = nb.relative_to(root)
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    record = out / "records" / f"{nb.stem}.json"
    record.unlink(missing_ok=True)
    os.environ[RECORD_ENV] = str(record)
    print(f"executing {rel} ...", flush=True)
    start = time.perf_counter()
    try:
        execute_page(nb, target, parameters=parameters, kernel_name=kernel)
    finally:
        os.environ.pop(RECORD_ENV, None)
    seconds = time.perf_counter() - start
    print(f"  {rel}: {seconds:.0f} s", flush=True)
    return {"page": nb.stem, "seconds": seconds}


def read_records(out: Path = BUILD / "executed") -> list[dict]:
    """The claims records written by the executed pages, with papermill's wall time added."""
    records = []
    for path in sorted((out / "records").glob("*.json")):
        record = json.loads(path.read_text())
        executed = next(out.rglob(f"{path.stem}.ipynb"), None)
        if executed is not None:
            meta = json.loads(executed.read_text()).get("metadata", {}).get("papermill", {})
            record["wall_seconds"] = meta.get("duration")
        records.append(record)
    return records


def _cell(text) -> str:
    """Table-cell text: a claim named "|a - b|" must not split the Markdown row."""
    return str(text).replace("|", "\\|")


def _device(record: dict) -> str:
    """The device a page ran on, and the one it was asked for when they differ (chapter 3.1 computes on the CPU)."""
    asked, ran = record.get("device"), record.get("ran_on") or record.get("device")
    return str(ran) if ran == asked else f"{ran} (asked: {asked})"


def status_markdown(records: list[dict]) -> str:
    """The status page's tables: one row per page, then every claim with its measured value."""
    if not records:
        return "No page has been executed in this build.\n"
    lines = [
        "| page | wall time (s) | seed | scale | device | threads | peak memory (MiB) | library | claims |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        wall = r.get("wall_seconds") or r.get("seconds") or 0
        passed = sum(c["passed"] for c in r["claims"])
        lines.append(
            f"| {r['page']} | {wall:.0f} | {r['seed']} | {r['scale']} | {_device(r)} | {r.get('threads')} | "
            f"{r['peak_memory_mib']:.0f} | {r['version']} | {passed}/{len(r['claims'])} passed |"
        )
    lines += [
        "",
        "## Claims",
        "",
        "Each finding is shown with its null model's value, computed in the same run, which fails it; a check of",
        "mathematics has no null.",
        "",
        "| page | claim | measured | expected | null model |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        for c in r["claims"]:
            null = "mathematics" if c.get("kind") == "mathematics" else _number(c.get("baseline"))
            lines.append(
                f"| {r['page']} | {_cell(c['name'])} | {c['value']:.4g} | {c['comparison']} {c['threshold']:.4g} | "
                f"{null} |"
            )
    lines += ["", "## Environment", "", environment_markdown(records)]
    return "\n".join(lines) + "\n"


def _number(x) -> str:
    return "—" if x is None else f"{x:.4g}"


def environment_markdown(records: list[dict]) -> str:
    """The package versions and processor of the runs (what else, besides hardware, can change a result); a
    processor with native bf16 trains in bf16 autocast (:func:`~halluc_lib.core.runtime.autocast_dtype`)."""
    seen = {}
    for r in records:
        key = json.dumps(
            {
                "packages": r.get("packages"),
                "cpu": r.get("cpu_capability"),
                "arch": r.get("machine"),
                "bf16": r.get("cpu_native_bf16"),
            },
            sort_keys=True,
        )
        seen.setdefault(key, []).append(r["page"])
    lines = ["| packages | processor | pages |", "|---|---|---|"]
    for key, pages in seen.items():
        env = json.loads(key)
        packages = ", ".join(f"{k} {v}" for k, v in (env["packages"] or {}).items())
        bf16 = {True: ", native bf16", False: ", no native bf16"}.get(env["bf16"], "")
        lines.append(f"| {packages or '—'} | {env['arch'] or '—'} ({env['cpu'] or '—'}{bf16}) | {len(pages)} |")
    return "\n".join(lines) + "\n"


def robustness_markdown(root: Path = ROOT, sweep_dir: Path = SWEEP_DIR) -> str:
    """The robustness page's tables: for every page and claim, its value at each seed, the spread, how many
    seeds pass, the null model's value (median over seeds) and whether the records are stale."""
    lines = []
    for nb in experiment_notebooks(root):
        page = nb.stem
        data = sweeps.load_sweep(page, sweep_dir)
        if not data["runs"]:
            lines += [f"## {page}", "", "Not swept yet.", ""]
            continue
        groups = sorted({(r["scale"], sweeps.device_kind(r.get("device"))) for r in data["runs"]})
        lines += [f"## {page}", ""]
        for scale, kind in groups:
            page_runs = sweeps.runs(page, scale, kind, sweep_dir)
            seeds = [r["seed"] for r in page_runs]
            stale = sum(sweeps.is_stale(r, nb) for r in page_runs)
            wall = sweeps.spread([r["wall_seconds"] for r in page_runs])
            errors = [f"seed {r['seed']}: {r['error']}" for r in page_runs if r.get("error")]
            lines += [
                f"**{scale} scale on {kind}**, seeds {', '.join(map(str, seeds))}; wall time {wall['min']:.0f}–"
                f"{wall['max']:.0f} s (median {wall['median']:.0f} s)"
                + (f"; **{stale} of {len(page_runs)} runs are stale** (made by other code)" if stale else "; current"),
                "",
            ]
            lines += [f"- {_cell(e)}" for e in errors] + ([""] if errors else [])
            table = sweeps.claim_table(page_runs)
            header = " | ".join(f"seed {s}" for s in seeds)
            lines += [
                f"| claim | expected | {header} | min | median | max | passed | null model |",
                "|---|---|" + "---|" * len(seeds) + "---|---|---|---|---|",
            ]
            for name, rows in table.groupby("name", sort=False):
                by_seed = dict(zip(rows.seed, rows.value, strict=True))
                cells = " | ".join(_number(by_seed.get(s)) for s in seeds)
                s = sweeps.spread(rows.value)
                kind_ = rows.kind.iloc[0]
                null = "mathematics" if kind_ == "mathematics" else _number(rows.baseline.dropna().median())
                lines.append(
                    f"| {_cell(name)} | {rows.comparison.iloc[0]} {rows.threshold.iloc[0]:.4g} | {cells} | "
                    f"{s['min']:.4g} | {s['median']:.4g} | {s['max']:.4g} | {int(rows.passed.sum())}/{len(rows)} | "
                    f"{null} |"
                )
            lines.append("")
    return "\n".join(lines) + "\n"


def stage(site: Path = BUILD / "site", executed: Path = BUILD / "executed", root: Path = ROOT) -> Path:
    """Copy the book's sources to ``site``, replace notebooks by their executed copies, write the status page, the
    robustness tables and the syllabus's table of class run times (:mod:`halluc_lib.tools.syllabus`)."""
    shutil.rmtree(site, ignore_errors=True)
    site.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, site / name)
    shutil.copytree(root / "book", site / "book", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_build"))
    # pages quote library code with {literalinclude} ../halluc_lib/...: the sources travel with the book
    shutil.copytree(root / "halluc_lib", site / "halluc_lib", ignore=shutil.ignore_patterns("__pycache__"))
    for nb in notebooks(root):
        done = executed / nb.relative_to(root)
        if not done.exists():
            raise FileNotFoundError(f"{done} is missing: run `python -m halluc_lib.tools.build execute` first")
        shutil.copy2(done, site / nb.relative_to(root))
    status = site / "book" / "status.md"
    text = status.read_text()
    atomic_write_text(status, text.replace(STATUS_MARKER, status_markdown(read_records(executed))))
    robustness = site / "book" / "robustness.md"
    text = robustness.read_text()
    atomic_write_text(robustness, text.replace(ROBUSTNESS_MARKER, robustness_markdown(root)))
    page = site / "book" / "syllabus.md"
    if page.exists():  # the teaching pages' class table, from the sweep (a minimal book staged in a test has none)
        syllabus.fill_page(page, SWEEP_DIR, root)
    return site


def build_html(site: Path = BUILD / "site", output: Path = ROOT) -> Path:
    """Build the staged book with Jupyter Book into ``output/_build/html``, warnings as errors."""
    cmd = [
        str(Path(sys.executable).parent / "jupyter-book"),
        "build",
        str(site),
        "--path-output",
        str(output),
        "-W",
        "-n",
        "--keep-going",
    ]
    subprocess.run(cmd, check=True)
    return output / "_build" / "html"


_LATEX_LABEL = re.compile(r"\\label\{\\detokenize\{(?P<doc>[^}]*)::doc\}\}|\\label\{exercise:(?P<exercise>[^}]*)\}")


def label_exercises(tex: str) -> str:
    """The LaTeX of the book with every exercise labelled as Sphinx's ``{ref}`` points to it.

    sphinx-exercise labels an exercise ``exercise:<label>`` (the target of its ``{numref}``), while a ``{ref}`` to it
    points at ``<document>:<label>``, which nothing defines: the link would be unresolved. The second label is added
    next to the first, with the document the exercise is in (the last ``<document>::doc`` label before it)."""
    document = ""

    def add(match: re.Match) -> str:
        nonlocal document
        if match["doc"] is not None:
            document = match["doc"]
            return match[0]
        return match[0] + r"\label{\detokenize{" + f"{document}:{match['exercise']}" + "}}"

    return _LATEX_LABEL.sub(add, tex)


def build_pdf(out: Path = BUILD / "pdf", executed: Path = BUILD / "executed", root: Path = ROOT) -> Path:
    """Build the whole book as one PDF through LaTeX into ``out/book.pdf``; return its path.

    The book is staged into ``out/src`` exactly as for the HTML (:func:`stage`); Jupyter Book writes its LaTeX into
    ``out/_build/latex`` (``_config.yml``'s ``latex`` section: XeLaTeX, Sphinx's book class) with the HTML build's
    warnings as errors; the exercises get the labels ``{ref}`` points to (:func:`label_exercises`); and Sphinx's
    Makefile runs latexmk, which stops at the first LaTeX error. The PDF and XeLaTeX's log are copied to
    ``out/book.pdf`` and ``out/book.log``."""
    site = stage(site=out / "src", executed=executed, root=root)
    latex = out / "_build" / "latex"
    shutil.rmtree(out / "_build", ignore_errors=True)
    for name in ("book.pdf", "book.log"):
        (out / name).unlink(missing_ok=True)
    jupyter_book = str(Path(sys.executable).parent / "jupyter-book")
    options = ["--builder", "latex", "-W", "-n", "--keep-going"]
    subprocess.run([jupyter_book, "build", str(site), "--path-output", str(out), *options], check=True)
    tex = latex / "book.tex"
    tex.write_text(label_exercises(tex.read_text()))
    stop = "-interaction=nonstopmode -halt-on-error -file-line-error"
    subprocess.run(["make", "-C", str(latex), "all-pdf", f"LATEXOPTS={stop}"], check=True)
    shutil.copy2(latex / "book.log", out / "book.log")
    shutil.copy2(latex / "book.pdf", out / "book.pdf")
    return out / "book.pdf"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m halluc_lib.tools.build", description=__doc__)
    parser.add_argument("step", choices=("execute", "html", "pdf", "status"))
    parser.add_argument(
        "--executed", type=Path, default=BUILD / "executed", help="executed pages, for pdf (default: _build/executed)"
    )
    args = parser.parse_args(argv)
    if args.step == "execute":
        execute()
    elif args.step == "html":
        build_html(stage())
    elif args.step == "pdf":
        print(f"the PDF is in {build_pdf(executed=args.executed)}")
    else:
        print(status_markdown(read_records()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
