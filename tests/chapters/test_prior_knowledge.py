import numpy as np
import pandas as pd
import pytest
import torch

from halluc_lib.chapters import prior_knowledge as retrieval
from halluc_lib.core import probe
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.world import ATTRIBUTES, make_probes
from halluc_lib.datasets import biographies

TINY = biographies.BiographyConfig(
    buckets=(0, 1, 8), per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=6, eval_every=6
)


def test_fact_sentence_uses_the_question_phrasing(tiny_world):
    probe = make_probes(tiny_world)[0]
    sentence = retrieval.fact_sentence(tiny_world.names[probe.person], probe.attribute, probe.answer)
    assert sentence == f"{probe.prompt} {probe.answer} ."
    with pytest.raises(ValueError, match="attribute must be one of"):
        retrieval.fact_sentence("Baba Baban", "shoe_size", "9")


def test_open_book_prepends_the_retrieved_sentence(tiny_world):
    probes = make_probes(tiny_world, people=[0, 1])
    opened = retrieval.open_book(probes, tiny_world)
    for p, q in zip(probes, opened, strict=True):
        assert q.prompt == f"{p.prompt} {p.answer} . {p.prompt}"
        assert (q.answer, q.person, q.exposures) == (p.answer, p.person, p.exposures)
    kb = retrieval.knowledge_base(tiny_world)
    assert len(kb) == tiny_world.n_people * len(tiny_world.attributes)
    wrong = {key: "nowhere" for key in kb}
    assert retrieval.open_book(probes[:1], tiny_world, wrong)[0].prompt.startswith(f"{probes[0].prompt} nowhere .")


def test_strangers_are_new_people(tiny_world):
    others = retrieval.strangers(tiny_world, 20, seed=1)
    assert others.n_people == 20
    assert not set(others.names) & set(tiny_world.names)
    assert set(others.exposures) == {0}
    contexts, targets = retrieval.reading_documents(others, seed=1)
    assert contexts == targets and len(contexts) == 20
    with pytest.raises(ValueError, match="n must be > 0"):
        retrieval.strangers(tiny_world, 0)


def _answers(correct, confidence, top_token=None):
    n = len(correct)
    return pd.DataFrame(
        {
            "attribute": ["birth_city"] * n,
            "correct": correct,
            "confidence": confidence,
            "top_token": top_token or [ATTRIBUTES["birth_city"].values[0]] * n,
        }
    )


def test_invalid_rate_counts_non_values():
    answers = _answers([True, False], [0.9, 0.5], top_token=[ATTRIBUTES["birth_city"].values[0], "1950"])
    assert retrieval.invalid_rate(answers) == 0.5


def test_constrained_answers_are_valid_values_whatever_the_model_prefers(tiny_world, tokenizer):
    """Constrained decoding picks among the asked attribute's values only: even logits whose top token is always
    "." (never a value) give a valid value, greedy or sampled — so the page's constrained row has no invalid
    answer by construction, and needs no claim."""
    probes = make_probes(tiny_world)
    logits = torch.randn(len(probes), len(tokenizer), generator=torch.Generator().manual_seed(0))
    logits[:, tokenizer.convert_tokens_to_ids(".")] = 50.0
    for temperature in (0.0, 1.0):
        answers = probe.answers_from_logits(logits, probes, tokenizer, temperature=temperature, seed=0)
        assert retrieval.invalid_rate(answers) == 1.0  # unconstrained, every answer is "."
        assert retrieval.invalid_rate(answers.assign(top_token=answers.prediction)) == 0.0
        assert all(p in ATTRIBUTES[a].values for p, a in zip(answers.prediction, answers.attribute, strict=True))


def test_adaptive_retrieval_never_exceeds_its_budget():
    """Whatever the confidences, ties included, a budget's threshold retrieves for at most that share of the
    questions, and for the least confident ones first — so the page's 60% budget needs no claim."""
    rng = np.random.default_rng(0)
    n = 101
    confidence = rng.choice([0.2, 0.5, 0.5, 0.9, 0.99], size=n)
    closed = _answers((rng.random(n) < 0.5).tolist(), confidence.tolist())
    opened = _answers([True] * n, [0.99] * n)
    budgets = [round(b, 2) for b in np.linspace(0, 1, 11)]
    curve = retrieval.retrieval_curve(closed, opened, budgets)
    assert (curve.retrieval_rate <= curve.budget + 1e-12).all()
    assert curve.retrieval_rate.iloc[0] == 0 and curve.retrieval_rate.iloc[-1] == 1
    for budget in budgets[1:-1]:
        chosen = confidence < retrieval.confidence_threshold(confidence, budget)
        assert chosen.mean() <= budget
        if chosen.any():
            assert confidence[chosen].max() < confidence[~chosen].min()


def test_combine_and_retrieval_curve():
    closed = _answers([True, False, False, True], [0.9, 0.2, 0.3, 0.8])
    opened = _answers([True, True, True, False], [0.99] * 4)
    both = retrieval.combine(closed, opened, np.array([False, True, True, False]))
    assert both.correct.tolist() == [True] * 4
    assert both.retrieved.tolist() == [False, True, True, False]
    curve = retrieval.retrieval_curve(closed, opened, [0.0, 0.5, 1.0]).set_index("budget")
    assert curve.retrieval_rate.tolist() == [0.0, 0.5, 1.0]
    assert curve.accuracy.tolist() == [0.5, 1.0, 0.75]
    with pytest.raises(ValueError, match="equally long"):
        retrieval.combine(closed, opened, np.array([True]))
    with pytest.raises(ValueError, match=r"budget must be in \[0, 1\]"):
        retrieval.confidence_threshold(np.array([0.5]), 1.5)


def test_run_retrieval_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    base = biographies.biography_model(TINY, seed=0, device="cpu", progress=False)
    run = retrieval.ask_closed_and_open(base, steps=2, n_strangers=16, seed=0, device="cpu", progress=False)
    assert len(run.closed) == len(run.opened) == len(run.reader_closed) == len(make_probes(base.world))
    # the loss on the passage changes what the reader learns: same seed and steps, different weights
    reader = run.reader.state_dict()
    careless = run.careless_reader.state_dict()
    assert any(not torch.equal(weights, reader[name]) for name, weights in careless.items())
    # the careless reader is train_reader's with train_on_context=True (loaded here from the cache it wrote)
    again = retrieval.train_reader(base, steps=2, n_strangers=16, train_on_context=True, device="cpu", progress=False)
    assert all(torch.equal(weights, careless[name]) for name, weights in again.state_dict().items())
