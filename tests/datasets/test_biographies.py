import dataclasses

import pytest
import torch

from halluc_lib.core import cache, models
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.world import Probe
from halluc_lib.datasets import biographies

TINY = biographies.BiographyConfig(
    buckets=(0, 1, 8),
    per_bucket=4,
    size=ModelSize(1, 32, 2),
    batch_size=4,
    steps=12,
    lr=1e-2,
    eval_every=6,
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_configs_per_scale():
    quick = biographies.BiographyConfig.for_scale("quick")
    full = biographies.BiographyConfig.for_scale("full")
    assert quick.per_bucket == 150 and full.per_bucket > quick.per_bucket
    assert full.size == ModelSize.for_scale("full") and quick.size == ModelSize.for_scale("quick")
    assert full.lr < quick.lr  # the larger model needs the smaller learning rate
    assert biographies.BiographyConfig.for_scale("quick", "memorize").buckets == (0, 1, 2, 4, 8)
    with pytest.raises(ValueError, match="regime must be one of"):
        biographies.BiographyConfig.for_scale("quick", "long")
    with pytest.raises(ValueError, match="scale must be one of"):
        biographies.BiographyConfig.for_scale("medium")
    with pytest.raises(ValueError, match="per_bucket must be"):
        biographies.BiographyConfig(per_bucket=0)
    with pytest.raises(TypeError, match="size must be a ModelSize"):
        biographies.BiographyConfig(size=(2, 128, 4))


def test_biography_model_trains_once_then_loads():
    run = biographies.biography_model(TINY, seed=1, device="cpu", progress=False)
    assert len(run.answers) == 12 * 4 and "phrasing_seen" in run.answers
    assert set(run.result.evals.step) == {0, 6, 12}
    summary = biographies.summarize_by_exposure(run.answers)
    assert summary.exposures.tolist() == [0, 1, 8]
    again = biographies.biography_model(TINY, seed=1, device="cpu", progress=False)
    assert not run.from_cache and again.from_cache
    assert again.answers.confidence.tolist() == pytest.approx(run.answers.confidence.tolist())
    other_seed = biographies.biography_model(TINY, seed=2, device="cpu", progress=False)
    assert not other_seed.from_cache and other_seed.world.checksum() != run.world.checksum()
    with pytest.raises(TypeError, match="config must be a BiographyConfig"):
        biographies.biography_model(dataclasses.asdict(TINY))


def test_phrasing_seen():
    corpus = ["Baba Baban was born in Lisbon . Baba Baban works for Acme ."]
    probes = [
        Probe(0, "birth_city", "Baba Baban was born in", "Lisbon", 1, 0),
        Probe(0, "birth_city", "Baba Baban is a native of", "Lisbon", 1, 4),
    ]
    assert biographies.phrasing_seen(probes, corpus) == [True, False]


def test_evaluation_during_training_runs_where_the_model_is(monkeypatch, tokenizer):
    """The in-training probe must not move the model (on a GPU machine, "auto" would pull a CPU run onto CUDA)."""
    seen = {}

    def fake_answer_probes(model, tok, probes, *, device="auto"):
        seen["device"] = device
        raise StopIteration

    monkeypatch.setattr(biographies.probe, "answer_probes", fake_answer_probes)
    evaluate = biographies.evaluate_by_exposure(tokenizer, [])
    with pytest.raises(StopIteration):
        evaluate(models.tiny_gpt(tokenizer, n_layer=1, n_embd=16, n_head=2), step=0)
    assert seen["device"] == torch.device("cpu")
