import pytest
import torch

from halluc_lib.core import cache, recipes
from halluc_lib.core.batching import LMBatches
from halluc_lib.core.models import DigitMLP
from halluc_lib.core.world import build_corpus


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))


def test_model_size_per_scale_and_checks():
    assert recipes.ModelSize.for_scale("quick") == recipes.ModelSize(2, 128, 4)
    assert recipes.ModelSize.for_scale("full") == recipes.ModelSize(4, 256, 8)
    with pytest.raises(ValueError, match="width must be a multiple of n_head"):
        recipes.ModelSize(2, 130, 4)
    with pytest.raises(ValueError, match="n_layer must be"):
        recipes.ModelSize(0, 128, 4)
    with pytest.raises(ValueError, match="scale must be one of"):
        recipes.ModelSize.for_scale("huge")


def test_budget_converts_epochs_to_steps_in_one_place():
    assert recipes.Budget(steps=7).steps_for(100) == 7
    assert recipes.Budget(epochs=2).steps_for(13) == 26
    assert recipes.Budget(epochs=0.5).steps_for(9) == 4  # round(4.5) to even
    assert recipes.Budget(epochs=0.01).steps_for(3) == 1  # never zero
    with pytest.raises(ValueError, match="exactly one of steps and epochs"):
        recipes.Budget()
    with pytest.raises(ValueError, match="exactly one of steps and epochs"):
        recipes.Budget(steps=3, epochs=1)
    with pytest.raises(ValueError, match="epochs must be a positive number"):
        recipes.Budget(epochs=0)


def test_train_lm_is_seeded_and_cached(tiny_world, tokenizer):
    corpus = build_corpus(tiny_world)
    size = recipes.ModelSize(1, 32, 2)
    first = recipes.train_lm(corpus, tokenizer, size, 4, batch_size=4, seed=0, device="cpu", progress=False)
    again = recipes.train_lm(corpus, tokenizer, size, 4, batch_size=4, seed=0, device="cpu", progress=False)
    other = recipes.train_lm(corpus, tokenizer, size, 4, batch_size=4, seed=1, device="cpu", progress=False)
    weights = [t.model.transformer.wte.weight for t in (first, again, other)]
    assert torch.equal(weights[0], weights[1]) and not torch.equal(weights[0], weights[2])
    assert first.result.steps == 4 and not first.from_cache
    key = {"what": "test"}
    cached = [
        recipes.train_lm(corpus, tokenizer, size, 4, batch_size=4, device="cpu", progress=False, cache_key=key)
        for _ in range(2)
    ]
    assert [c.from_cache for c in cached] == [False, True]
    assert torch.equal(cached[0].model.transformer.wte.weight, weights[0])  # caching changes nothing
    by_epochs = recipes.train_lm(corpus, tokenizer, size, recipes.Budget(epochs=1), batch_size=4, progress=False)
    assert by_epochs.result.steps == LMBatches.from_texts(corpus, tokenizer, batch_size=4).batches_per_epoch()


def test_train_classifier_returns_the_inner_model_on_the_cpu_in_eval_mode():
    data = {"pixels": torch.rand(32, 2, 8, 8), "labels": torch.randint(0, 2, (32,)), "digits": torch.zeros(32)}
    wrapped = []

    def wrap(model):
        wrapped.append(model)
        return model

    trained = recipes.train_classifier(DigitMLP, data, 3, batch_size=8, device="cpu", wrap=wrap)
    assert wrapped == [trained.model] and not trained.model.training
    assert next(trained.model.parameters()).device.type == "cpu" and trained.result.steps == 3
    with pytest.raises(TypeError, match="budget must be a Budget"):
        recipes.train_classifier(DigitMLP, data, "3", batch_size=8)


def test_train_text_classifier_fine_tunes_a_copy(tokenizer):
    ids = torch.randint(5, len(tokenizer), (16, 6))
    data = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.randint(0, 2, (16,))}
    start = recipes.train_text_classifier(tokenizer, data, 2, device="cpu", batch_size=8).model
    before = {k: v.clone() for k, v in start.state_dict().items()}
    tuned = recipes.train_text_classifier(tokenizer, data, 2, device="cpu", batch_size=8, start_from=start).model
    assert all(torch.equal(before[k], v) for k, v in start.state_dict().items())  # the start is left unchanged
    assert tuned is not start and tuned.config.hidden_size == recipes.TEXT_CLASSIFIER.width
