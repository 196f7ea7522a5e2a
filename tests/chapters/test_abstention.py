import math

import pandas as pd
import pytest
import torch

from halluc_lib.chapters import abstention
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.tokenizer import IDK_TOKEN
from halluc_lib.core.world import ATTRIBUTES, make_probes
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


def test_judge_with_idk_picks_among_the_values_and_idk(tiny_world, tokenizer):
    probes = make_probes(tiny_world, people=[0, 1, 2])[:3]
    logits = torch.zeros(3, len(tokenizer))
    logits[0, tokenizer.convert_tokens_to_ids(IDK_TOKEN)] = 5.0  # says "I don't know"
    logits[1, tokenizer.convert_tokens_to_ids(probes[1].answer)] = 5.0  # names the right value
    wrong = next(v for v in ATTRIBUTES[probes[2].attribute].values if v != probes[2].answer)
    logits[2, tokenizer.convert_tokens_to_ids(wrong)] = 5.0  # names a wrong value
    logits[2, tokenizer.convert_tokens_to_ids(".")] = 9.0  # not a candidate: ignored
    judged = abstention.judge_with_idk(logits, probes, tokenizer)
    assert judged.abstained.tolist() == [True, False, False]
    assert judged.correct.tolist() == [False, True, False]
    # softmax over the attribute's values and <idk> only, one of them at logit 5 and the others at 0
    others = [len(ATTRIBUTES[p.attribute].values) for p in probes]  # how many candidates sit at logit 0
    assert judged.p_idk[0] == pytest.approx(math.exp(5) / (math.exp(5) + others[0]))
    assert judged.p_idk[1] == pytest.approx(1 / (math.exp(5) + others[1]))
    assert judged.p_idk[2] == pytest.approx(1 / (math.exp(5) + others[2]))


def test_run_abstention_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    base = biographies.biography_model(TINY, seed=0, device="cpu", progress=False)
    before = [p.detach().clone() for p in base.model.parameters()]
    run = abstention.compare_abstention(base, steps=20, seed=0, device="cpu", progress=False)
    answers = dict(tuple(run.answers.groupby("variant")))
    # both variants are asked about the same people: the half of the world fine-tuning never mentioned
    assert answers["guessing"].person.tolist() == answers["abstaining"].person.tolist()
    n_people = base.world.n_people
    assert answers["guessing"].person.nunique() == n_people - n_people // 2
    # the score table is each variant's answers scored at each target (two code paths agree)
    assert len(run.scores) == 2 * 4
    for row in run.scores.itertuples():
        assert row.score == pytest.approx(abstention.confidence_target_score(answers[row.variant], row.t))
    # only the abstaining copy was trained to say <idk>, and the base model itself is left as it was
    assert answers["abstaining"].p_idk.mean() > answers["guessing"].p_idk.mean()
    assert all(torch.equal(a, b) for a, b in zip(before, base.model.parameters(), strict=True))
    assert run.models["guessing"] is not base.model and run.models["abstaining"] is not base.model
