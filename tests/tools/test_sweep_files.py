"""The committed seed sweep backs every page: each claim holds at five quick-scale seeds, and fails for its null."""

import json
import re

import pytest

from halluc_lib.core import claims as claims_module
from halluc_lib.core import sweeps
from halluc_lib.tools.build import notebooks

QUICK_SEEDS = 5
PAGES = [nb for nb in notebooks() if "Claims(" in nb.read_text()]
LITERAL_CLAIM = re.compile(r"claims\.check(?:_math)?\(\s*\"([^\"]*)\"")


def code(notebook) -> str:
    return "\n".join(
        "".join(c["source"]) for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"
    )


@pytest.mark.parametrize("notebook", PAGES, ids=lambda nb: nb.stem)
def test_every_claim_holds_at_five_quick_seeds_and_fails_for_its_null(notebook):
    runs = sweeps.runs(notebook.stem, "quick", "cpu")
    seeds = {r["seed"] for r in runs}
    assert len(seeds) >= QUICK_SEEDS, f"{notebook.stem}: swept at seeds {sorted(seeds)}; run `make seeds`"
    names = [tuple(c["name"] for c in r["claims"]) for r in runs]
    assert len(set(names)) == 1 and names[0], f"{notebook.stem}: the runs checked different claims: {set(names)}"
    for run in runs:
        assert run.get("error") is None, f"{notebook.stem} seed {run['seed']}: {run['error']}"
        for c in run["claims"]:
            claim = claims_module.evaluate_claim(
                c["name"], c["value"], c["comparison"], c["threshold"], c["baseline"], c["kind"]
            )
            assert claims_module.failure_message(claim) is None, (
                f"seed {run['seed']}: {claims_module.failure_message(claim)}"
            )


@pytest.mark.parametrize("notebook", PAGES, ids=lambda nb: nb.stem)
def test_the_sweep_checked_the_claims_the_page_makes_now(notebook):
    swept = {c["name"] for r in sweeps.runs(notebook.stem, "quick", "cpu") for c in r["claims"]}
    in_page = set(LITERAL_CLAIM.findall(code(notebook)))
    assert in_page, f"{notebook.stem}: no literal claim names found"
    missing = in_page - swept
    assert not missing, f"{notebook.stem}: claims not in the sweep (run `make seeds PAGES={notebook.stem}`): {missing}"
