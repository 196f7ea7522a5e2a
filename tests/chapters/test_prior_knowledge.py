import numpy as np
import pandas as pd
import pytest

from halluc_lib.chapters import prior_knowledge as retrieval
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
    careless = retrieval.train_reader(
        base, steps=2, n_strangers=16, train_on_context=True, device="cpu", progress=False
    )
    assert careless is not run.reader
