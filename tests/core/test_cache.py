import pytest
import torch

from halluc_lib.core import batching, cache, models, train
from halluc_lib.core.world import build_corpus


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
