import dataclasses

import pytest
import torch

from halluc_lib import batching, cache, exposure, models, train
from halluc_lib.world import build_corpus

TINY = exposure.ExposureConfig(
    buckets=(0, 1, 8),
    per_bucket=4,
    n_layer=1,
    n_embd=32,
    n_head=2,
    batch_size=4,
    steps=12,
    lr=1e-2,
    eval_every=6,
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_cache_key_is_stable_and_sensitive():
    assert cache.cache_key({"a": 1}) == cache.cache_key({"a": 1}) != cache.cache_key({"a": 2})
    with pytest.raises(TypeError, match="parts must be a dict"):
        cache.cache_key([1])


def test_train_cached_trains_once_then_loads(tiny_world, tokenizer):
    batches = batching.LMBatches.from_texts(build_corpus(tiny_world), tokenizer, batch_size=4)

    def build():
        torch.manual_seed(0)
        return models.tiny_gpt(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=64)

    config = train.TrainConfig(steps=5, eval_every=5)
    evals = lambda m, s: {"x": s}  # noqa: E731
    m1, r1, hit1 = cache.train_cached(build, batches, config, key={"t": 1}, device="cpu", eval_fn=evals, progress=False)
    m2, r2, hit2 = cache.train_cached(build, batches, config, key={"t": 1}, device="cpu", eval_fn=evals, progress=False)
    assert (hit1, hit2) == (False, True)
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True))
    assert r2.history.loss.tolist() == pytest.approx(r1.history.loss.tolist())
    assert r2.evals.x.tolist() == [0, 5]
    _, _, hit3 = cache.train_cached(build, batches, config, key={"t": 1}, cache=False, device="cpu", progress=False)
    assert hit3 is False


def test_exposure_configs_per_scale():
    quick = exposure.ExposureConfig.for_scale("quick")
    full = exposure.ExposureConfig.for_scale("full")
    assert quick.per_bucket == 150 and full.per_bucket > quick.per_bucket
    assert full.lr < quick.lr  # the larger model needs the smaller learning rate
    assert exposure.ExposureConfig.for_scale("quick", "memorize").buckets == (0, 1, 2, 4, 8)
    with pytest.raises(ValueError, match="regime must be one of"):
        exposure.ExposureConfig.for_scale("quick", "long")
    with pytest.raises(ValueError, match="scale must be one of"):
        exposure.ExposureConfig.for_scale("medium")


def test_run_exposure_end_to_end():
    run = exposure.run_exposure(TINY, seed=1, device="cpu", progress=False)
    assert len(run.answers) == 12 * 4 and "phrasing_seen" in run.answers
    assert set(run.result.evals.step) == {0, 6, 12}
    summary = exposure.summarize_by_exposure(run.answers)
    assert summary.exposures.tolist() == [0, 1, 8]
    assert summary.names_a_value.between(0, 1).all()
    again = exposure.run_exposure(TINY, seed=1, device="cpu", progress=False)
    assert again.from_cache and again.answers.confidence.tolist() == pytest.approx(run.answers.confidence.tolist())
    every = exposure.answers_in_every_phrasing(run, max_exposures=1)
    assert len(every) == 8 * 4 * TINY.n_templates
    assert not every[every.exposures == 0].phrasing_seen.any()
    with pytest.raises(TypeError, match="config must be an ExposureConfig"):
        exposure.run_exposure(dataclasses.asdict(TINY))


def test_phrasing_seen():
    from halluc_lib.world import Probe

    corpus = ["Baba Baban was born in Lisbon . Baba Baban works for Acme ."]
    probes = [
        Probe(0, "birth_city", "Baba Baban was born in", "Lisbon", 1, 0),
        Probe(0, "birth_city", "Baba Baban is a native of", "Lisbon", 1, 4),
    ]
    assert exposure.phrasing_seen(probes, corpus) == [True, False]


def test_evaluation_during_training_runs_where_the_model_is(monkeypatch, tiny_world, tokenizer):
    """The in-training probe must not move the model (on a GPU machine, "auto" would pull a CPU run onto CUDA)."""
    seen = {}

    def fake_answer_probes(model, tok, probes, *, device="auto"):
        seen["device"] = device
        raise StopIteration

    monkeypatch.setattr(exposure.probe, "answer_probes", fake_answer_probes)
    evaluate = exposure._eval_by_bucket(tokenizer, [])
    with pytest.raises(StopIteration):
        evaluate(models.tiny_gpt(tokenizer, n_layer=1, n_embd=16, n_head=2), step=0)
    assert seen["device"] == torch.device("cpu")
