import dataclasses

import pytest
import torch

from halluc_lib.chapters import exposure
from halluc_lib.core import cache, probe
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.world import make_probes
from halluc_lib.datasets.biographies import BiographyConfig, summarize_by_exposure

TINY = BiographyConfig(buckets=(0, 1, 8), per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=12, eval_every=6)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_config_holds_both_regimes_at_each_scale():
    quick, full = exposure.Config.for_scale("quick"), exposure.Config.for_scale("full")
    assert quick.crisp == BiographyConfig.for_scale("quick", "crisp")
    assert full.memorize == BiographyConfig.for_scale("full", "memorize")
    assert full.crisp.per_bucket > quick.crisp.per_bucket


def test_run_trains_both_regimes_and_asks_in_every_phrasing():
    config = exposure.Config(crisp=TINY, memorize=dataclasses.replace(TINY, steps=6))
    run = exposure.run(config, seed=0, device="cpu", progress=False)
    assert run.crisp.result.steps == 12 and run.memorize.result.steps == 6
    every = exposure.answers_in_every_phrasing(run.crisp, max_exposures=1)
    assert len(every) == 8 * 4 * TINY.n_templates
    assert not every[every.exposures == 0].phrasing_seen.any()  # never seen, so no phrasing was seen
    assert every[every.exposures == 1].phrasing_seen.any()
    with pytest.raises(TypeError, match="config must be an exposure.Config"):
        exposure.run(TINY)


def test_before_training_is_the_fresh_model_asked_the_same_questions():
    """The page's null model: the step-0 evaluation equals the freshly initialised model (same seed) asked every
    probe — near chance — while the trained model's answers differ."""
    config = exposure.Config(crisp=TINY, memorize=dataclasses.replace(TINY, steps=6))
    run = exposure.run(config, seed=0, device="cpu", progress=False)
    torch.manual_seed(0)  # train_lm builds the model right after seeding
    fresh = TINY.size.gpt(run.crisp.tokenizer)
    answers = probe.answer_probes(fresh, run.crisp.tokenizer, make_probes(run.crisp.world), device="cpu")
    by_hand = summarize_by_exposure(answers)
    untrained = exposure.before_training(run.crisp)
    assert untrained.index.tolist() == [0, 1, 8]
    assert untrained.accuracy.tolist() == pytest.approx(by_hand.accuracy.tolist())
    assert untrained.confidence.tolist() == pytest.approx(by_hand.confidence.tolist(), rel=1e-4)
    trained = summarize_by_exposure(run.crisp.answers)
    assert untrained.confidence.tolist() != pytest.approx(trained.confidence.tolist(), rel=1e-3)
