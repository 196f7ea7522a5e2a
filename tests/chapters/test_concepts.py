import pytest
import torch

from halluc_lib.chapters import concepts
from halluc_lib.core import cache, probe
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.world import make_probes
from halluc_lib.datasets.biographies import BiographyConfig, summarize_by_exposure

TINY = BiographyConfig(
    buckets=(0, 1, 8), per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=12, lr=1e-2, eval_every=6
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_untrained_is_the_fresh_model_asked_the_same_questions():
    """The page's null model: the step-0 evaluation equals a freshly initialised model (same seed) asked every
    probe, and differs from the trained model's answers."""
    run = concepts.run(concepts.Config(TINY), seed=0, device="cpu", progress=False)
    base = run.base
    torch.manual_seed(0)  # train_lm builds the model right after seeding, so this is the same initial model
    fresh = TINY.size.gpt(base.tokenizer)
    by_hand = summarize_by_exposure(probe.answer_probes(fresh, base.tokenizer, make_probes(base.world), device="cpu"))
    untrained = run.untrained
    assert untrained.index.tolist() == [0, 1, 8]
    assert untrained.accuracy.tolist() == pytest.approx(by_hand.accuracy.tolist())
    assert untrained.confidence.tolist() == pytest.approx(by_hand.confidence.tolist(), rel=1e-4)
    assert untrained.names_a_value.tolist() == pytest.approx(by_hand.names_a_value.tolist())
    trained = summarize_by_exposure(base.answers)
    assert untrained.confidence.tolist() != pytest.approx(trained.confidence.tolist(), rel=1e-3)


def test_run_checks_its_config():
    with pytest.raises(TypeError, match="config must be a concepts.Config"):
        concepts.run(TINY)
