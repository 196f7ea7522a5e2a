"""Reading findings from the committed seed sweep: what one page showed, quoted on another.

Most pages quote only what they measured themselves. The closing pages (the summary and the FAQ) run no
experiment: they quote what the other pages found. They must quote it the way those pages do — never a typed
number, never one lucky seed — so they read it from the page's sweep file (``data/sweeps/<page>.json``,
:mod:`halluc_lib.core.sweeps`), where every run at every seed recorded its claims and measurements:

* :func:`claim_spread` and :func:`measure_spread` — the minimum, median and maximum of one claim or measurement
  over the sweep's seeds (and, for a claim, its worst seed and its null model's median);
* :func:`glue_finding` — glue one of those numbers for the prose, and return a :class:`Finding` that says where
  it came from;
* :func:`provenance` — the table of what a page quoted, for the check a page without claims ends with: every
  number came from a sweep whose runs all passed;
* :func:`takeaways` — a chapter's "Key takeaways" bullets, read from the cell tagged ``takeaways``.

Everything here reads JSON files; nothing imports torch, so reading findings costs nothing.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from .report import glue
from .sweeps import SWEEP_DIR, device_kind, runs, spread, sweep_path

#: The scales a page runs at (:data:`halluc_lib.core.runtime.SCALES`; repeated here so that reading a sweep needs
#: no torch, and a unit test checks the two agree).
SCALES = ("quick", "full")

#: What :func:`glue_finding` can quote: a spread's ends and middle, the worst seed (the one closest to failing
#: the claim), the null model's median, and how many seeds the sweep ran.
STATS = ("min", "median", "max", "worst", "baseline_median", "seeds")

#: The metadata tag of the one markdown cell per chapter that holds its Key takeaways.
TAKEAWAYS_TAG = "takeaways"


class FindingNotFound(LookupError):
    """A page, claim or measurement that the sweep file does not hold; the message names what it does hold."""


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of :data:`SCALES`, else raise a ``ValueError`` naming them."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}; got {scale!r}")
    return scale


def page_runs(page: str, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR) -> list[dict]:
    """The page's runs at ``scale`` on ``device``'s kind, sorted by seed; raise :class:`FindingNotFound` when
    there are none, naming the file and the command that makes them."""
    chosen = runs(page, check_scale(scale), device, sweep_dir)
    if not chosen:
        raise FindingNotFound(
            f"{page}: no {scale}-scale runs on {device_kind(device)} in {sweep_path(page, sweep_dir)} "
            f"(run `make seeds PAGES={page}`)"
        )
    return chosen


def available(page: str, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR) -> dict:
    """The names a page's sweep can be quoted by: ``{"claims": [...], "measures": [...]}``, claims in the order
    the page checks them."""
    chosen = page_runs(page, scale, device, sweep_dir)
    claims = list(dict.fromkeys(c["name"] for r in chosen for c in r.get("claims", [])))
    measures = sorted({m for r in chosen for m in r.get("measurements", {})})
    return {"claims": claims, "measures": measures}


def _not_found(page: str, what: str, name: str, scale: str, device: str, sweep_dir: Path) -> FindingNotFound:
    names = available(page, scale, device, sweep_dir)
    return FindingNotFound(
        f"{page} has no {what} {name!r} in {sweep_path(page, sweep_dir)} ({scale} scale on {device_kind(device)}); "
        f"its claims: {names['claims']}; its measures: {names['measures']}"
    )


def claim_spread(page: str, claim: str, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR) -> dict:
    """One claim of a page over the sweep's seeds.

    Returns ``min``, ``median`` and ``max`` of its value; ``worst``, the value at the seed closest to failing it
    (the minimum for ``>=`` and ``>``, the maximum for ``<=`` and ``<``); ``baseline_median``, its null model's
    median (``None`` for a check of mathematics); ``seeds``, how many seeds checked it; ``passed``, whether it
    held at every one of them; and its ``comparison`` and ``threshold``.
    """
    checked = [c for r in page_runs(page, scale, device, sweep_dir) for c in r.get("claims", []) if c["name"] == claim]
    if not checked:
        raise _not_found(page, "claim", claim, scale, device, sweep_dir)
    values = spread(c["value"] for c in checked)
    comparison = checked[0]["comparison"]
    baselines = [c["baseline"] for c in checked if c.get("baseline") is not None]
    return {
        **values,
        "worst": values["min"] if comparison in (">=", ">") else values["max"],
        "baseline_median": statistics.median(baselines) if baselines else None,
        "seeds": len(checked),
        "passed": all(c["passed"] for c in checked),
        "comparison": comparison,
        "threshold": checked[0]["threshold"],
    }


def measure_spread(
    page: str, measure: str, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR
) -> dict:
    """One measurement of a page (recorded with :meth:`~halluc_lib.core.claims.Claims.measure`, not a claim)
    over the sweep's seeds: ``min``, ``median``, ``max`` and ``seeds``."""
    chosen = page_runs(page, scale, device, sweep_dir)
    values = [r["measurements"][measure] for r in chosen if measure in r.get("measurements", {})]
    if not values:
        raise _not_found(page, "measure", measure, scale, device, sweep_dir)
    return {**spread(values), "seeds": len(values)}


def all_runs_passed(page: str, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR) -> bool:
    """Whether every run of the page's sweep (at ``scale`` on ``device``'s kind) finished without an error and
    with every claim passed."""
    return all(
        not r.get("error") and all(c["passed"] for c in r.get("claims", []))
        for r in page_runs(page, scale, device, sweep_dir)
    )


@dataclass(frozen=True)
class Finding:
    """A number one page quotes from another page's sweep: the glue name it is quoted by, where it was read
    (page, a claim or a measure, and which statistic), its value, how many seeds the sweep ran, and whether all
    of the page's runs passed."""

    glue_name: str
    page: str
    kind: str
    name: str
    stat: str
    value: float
    seeds: int
    all_runs_passed: bool


def glue_finding(
    glue_name: str,
    page: str,
    claim: str | None = None,
    measure: str | None = None,
    stat: str = "median",
    scale: str = "quick",
    device: str = "cpu",
    sweep_dir: Path = SWEEP_DIR,
) -> Finding:
    """Glue one statistic of a claim or a measurement of ``page``'s sweep as ``glue_name``, and return the
    :class:`Finding` that says where it came from.

    Name exactly one of ``claim`` and ``measure``. ``stat`` is one of :data:`STATS`; ``worst`` and
    ``baseline_median`` exist for claims only. A name the sweep does not hold raises :class:`FindingNotFound`,
    whose message lists the page's claims and measures, so a renamed claim is caught where it is quoted.
    """
    if (claim is None) == (measure is None):
        raise ValueError(f"{glue_name}: name exactly one of claim= and measure=")
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}; got {stat!r}")
    if claim is not None:
        kind, name, found = "claim", claim, claim_spread(page, claim, scale, device, sweep_dir)
    else:
        if stat in ("worst", "baseline_median"):
            raise ValueError(f"{glue_name}: stat {stat!r} needs a claim (a measure has no threshold and no null)")
        kind, name, found = "measure", measure, measure_spread(page, measure, scale, device, sweep_dir)
    value = found[stat]
    if value is None:
        raise ValueError(f"{glue_name}: {page}'s claim {claim!r} is a check of mathematics and has no null model")
    glue(glue_name, value)
    return Finding(
        glue_name,
        page,
        kind,
        name,
        stat,
        float(value),
        found["seeds"],
        all_runs_passed(page, scale, device, sweep_dir),
    )


def provenance(found) -> pd.DataFrame:
    """One row per quoted :class:`Finding`, indexed by its glue name: where each number a page quotes came
    from. A glue name quoted twice is an error (the second would silently replace the first)."""
    rows = [asdict(f) for f in found]
    names = [r["glue_name"] for r in rows]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"glue names quoted more than once: {twice}")
    return pd.DataFrame(rows, columns=list(Finding.__dataclass_fields__)).set_index("glue_name")


def scoreboard(pages, scale: str = "quick", device: str = "cpu", sweep_dir: Path = SWEEP_DIR) -> pd.DataFrame:
    """One row per page: how many claims its sweep checked, at how many seeds, and whether every run passed."""
    rows = []
    for page in pages:
        chosen = page_runs(page, scale, device, sweep_dir)
        names = available(page, scale, device, sweep_dir)
        rows.append(
            {
                "page": page,
                "claims": len(names["claims"]),
                "measures": len(names["measures"]),
                "seeds": len(chosen),
                "all runs passed": all_runs_passed(page, scale, device, sweep_dir),
            }
        )
    return pd.DataFrame(rows, columns=["page", "claims", "measures", "seeds", "all runs passed"]).set_index("page")


def coverage(pages, sweep_dir: Path = SWEEP_DIR) -> pd.DataFrame:
    """How many runs each page's sweep file holds at each scale and device kind (columns ``quick on cpu``,
    ``full on cuda`` …; zero where there are none): what the committed sweep measured, and what it did not."""
    counts: dict[str, dict[str, int]] = {}
    for page in pages:
        path = sweep_path(page, sweep_dir)
        records = json.loads(path.read_text())["runs"] if path.exists() else []
        counts[page] = {}
        for r in records:
            key = f"{r.get('scale')} on {device_kind(r.get('device'))}"
            counts[page][key] = counts[page].get(key, 0) + 1
    table = pd.DataFrame.from_dict(counts, orient="index")
    columns = sorted(table.columns, key=lambda c: (not c.startswith("quick"), c))
    return table.reindex(index=list(counts), columns=columns).fillna(0).astype(int)


def checks_claims(notebook_path) -> bool:
    """Whether a notebook runs an experiment: its code builds a :class:`~halluc_lib.core.claims.Claims`. Only
    such pages are swept, shown on the robustness page, timed in the syllabus and quoted by the closing pages."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    return any("Claims(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def chapter_notebooks(book_dir) -> list[Path]:
    """The chapter notebooks that run an experiment (``ch*.ipynb`` whose code checks claims), in reading order:
    the pages whose sweeps and takeaways the closing pages collect."""
    found = [path for path in Path(book_dir).glob("ch*.ipynb") if checks_claims(path)]
    return sorted(found, key=lambda p: tuple(int(n) for n in re.findall(r"\d+", p.stem)))


def takeaways(notebook_path) -> list[str]:
    """A chapter's Key takeaways: the bullets of its one markdown cell tagged ``takeaways``
    (:data:`TAKEAWAYS_TAG`), each as one line of text (a bullet's continuation lines are joined to it).

    The summary page collects them; raising when a chapter has none, or several, keeps every chapter's list in
    one place that tools can find.
    """
    path = Path(notebook_path)
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if TAKEAWAYS_TAG in c.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1 or tagged[0]["cell_type"] != "markdown":
        raise ValueError(f"{path.name}: expected one markdown cell tagged {TAKEAWAYS_TAG!r}, found {len(tagged)}")
    bullets: list[str] = []
    for line in "".join(tagged[0]["source"]).splitlines():
        if line.startswith("- "):
            bullets.append(line[2:].strip())
        elif bullets and line.startswith(" ") and line.strip():
            bullets[-1] += " " + line.strip()
    if not bullets:
        raise ValueError(f"{path.name}: its {TAKEAWAYS_TAG!r} cell has no bullets")
    return bullets
