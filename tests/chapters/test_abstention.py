import pandas as pd
import pytest

from halluc_lib.chapters import abstention
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.tokenizer import IDK_TOKEN
from halluc_lib.datasets import biographies

TINY = biographies.BiographyConfig(
    buckets=(0, 1, 8), per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=6, eval_every=6
)


def test_confidence_target_scores():
    outcomes = pd.DataFrame({"correct": [True, False, False, False], "abstained": [False, False, True, True]})
    assert abstention.confidence_target_score(outcomes, 0.0) == pytest.approx(0.25)
    assert abstention.confidence_target_score(outcomes, 0.75) == pytest.approx((1 - 3) / 4)
    with pytest.raises(ValueError, match=r"t must be in \[0, 1\)"):
        abstention.confidence_target_score(outcomes, 1.0)


def test_finetune_documents_use_idk_for_rare_people(tiny_world):
    people = list(range(tiny_world.n_people))
    docs = abstention.finetune_documents(tiny_world, people, idk_max_exposures=1)
    rare = sum(1 for k in tiny_world.exposures if k <= 1) * len(tiny_world.attributes)
    assert sum(IDK_TOKEN in d for d in docs) == rare
    assert not any(IDK_TOKEN in d for d in abstention.finetune_documents(tiny_world, people, None))


def test_run_abstention_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    base = biographies.biography_model(TINY, seed=0, device="cpu", progress=False)
    run = abstention.compare_abstention(base, steps=3, seed=0, device="cpu", progress=False)
    assert set(run.answers.variant) == {"guessing", "abstaining"}
    assert set(run.scores.t) == {0.0, 0.5, 0.75, 0.9}
    assert run.answers.p_idk.between(0, 1).all()
