from types import SimpleNamespace

import numpy as np
import pytest
import torch

from halluc_lib.chapters import preprocessing
from halluc_lib.core.recipes import ModelSize
from halluc_lib.core.world import bucket_world
from halluc_lib.datasets import secrets


def test_normalize_text_merges_spellings():
    assert preprocessing.normalize_text("Ｂába  BABAN") == "baba baban"
    rng = np.random.default_rng(0)
    variants = {preprocessing.spelling_variants("Baba Baban", rng) for _ in range(40)}
    assert len(variants) == 4
    assert {preprocessing.normalize_text(v) for v in variants} == {"baba baban"}


def test_exact_and_near_dedup():
    docs = ["a b c d e f g", "a b c d e f g", "a b c d e f x", "p q r s t u v"]
    assert preprocessing.exact_dedup(docs) == ["a b c d e f g", "a b c d e f x", "p q r s t u v"]
    assert preprocessing.near_dedup(docs, threshold=0.5, n=3) == ["a b c d e f g", "p q r s t u v"]
    assert preprocessing.near_dedup(docs, threshold=0.9, n=3) == preprocessing.exact_dedup(docs)
    assert preprocessing.shingles("a b", 3) == {"a b"}
    assert preprocessing.jaccard(set(), set()) == 1.0
    with pytest.raises(ValueError, match="threshold must be in"):
        preprocessing.near_dedup(docs, threshold=0.0)


def test_near_duplicate_secrets_escape_exact_dedup():
    world = bucket_world((1,), 5, seed=0)
    made = secrets.make_secrets((3,), 2, seed=0)
    docs = secrets.near_duplicate_documents(made, world, seed=0)
    assert len(docs) == 6 and all(d.startswith(made[i // 3].text) for i, d in enumerate(docs))
    assert len(preprocessing.near_dedup(docs, threshold=0.3, n=5)) < len(preprocessing.exact_dedup(docs))


def test_exact_dedup_misses_near_duplicate_secrets():
    """Every copy of a secret is followed by a different sentence, so exact deduplication removes almost none of
    them — under 5% at the page's sizes, for any seed (the page's "exact deduplication removes only …")."""
    config = secrets.SecretsConfig.for_scale("quick")
    for seed in range(5):
        world = bucket_world(config.filler_buckets, config.filler_per_bucket, seed=seed)
        made = secrets.make_secrets(config.copies, config.per_copy, config.code_length, seed=seed)
        docs = secrets.near_duplicate_documents(made, world, seed=seed)
        assert 1 - len(preprocessing.exact_dedup(docs)) / len(docs) < 0.05, seed


class Knows(torch.nn.Module):
    """Has learned the true rule: the label is the sign of x."""

    def forward(self, x, **_):
        return SimpleNamespace(logits=torch.cat([-5 * x, 5 * x], dim=1))


class Constant(torch.nn.Module):
    """Knows nothing: both labels equally likely."""

    def forward(self, x, **_):
        return SimpleNamespace(logits=torch.zeros(len(x), 2))


def trained(model, subset):
    """A stand-in for recipes.Trained: the model, and as its result the labels it was trained on."""
    return SimpleNamespace(model=model, result=subset["labels"].tolist())


def test_out_of_fold_probability_flags_the_flipped_labels():
    """With a model that has learned the true rule, the out-of-fold probability of a label is low exactly where
    the label was flipped: what the filter relies on."""
    truth = torch.tensor([0, 1] * 10)
    flipped = torch.zeros(20, dtype=torch.bool)
    flipped[[1, 4, 7, 12]] = True
    data = {"x": (2 * truth - 1)[:, None].float(), "labels": torch.where(flipped, 1 - truth, truth)}

    prob, fitted = preprocessing.out_of_fold_label_probability(lambda subset: trained(Knows(), subset), data, seed=3)
    assert ((prob < 0.5) == flipped.numpy()).all()
    # one model per fold, each trained on the other fold (side by side, in forked processes)
    assert sorted(len(t.result) for t in fitted) == [10, 10]


class Memorises(torch.nn.Module):
    """Remembers the label of every example it was trained on, and knows nothing about any other."""

    def __init__(self, subset):
        super().__init__()
        self.seen = dict(zip(subset["x"][:, 0].tolist(), subset["labels"].tolist(), strict=True))

    def forward(self, x, **_):
        logits = torch.zeros(len(x), 2)
        for i, key in enumerate(x[:, 0].tolist()):
            if key in self.seen:
                logits[i, self.seen[key]] = 20.0
        return SimpleNamespace(logits=logits)


def test_out_of_fold_probability_uses_held_out_models():
    """Every example is scored by a model that never saw it: a model that memorised its training examples gives
    each of them probability 0.5, and each of the three models saw the other two folds."""
    data = {"x": torch.arange(12.0)[:, None], "labels": torch.tensor([0, 1] * 6)}

    prob, fitted = preprocessing.out_of_fold_label_probability(lambda s: trained(Memorises(s), s), data, folds=3)
    assert np.allclose(prob, 0.5)
    assert [len(t.model.seen) for t in fitted] == [8, 8, 8]
    assert set().union(*(t.model.seen for t in fitted)) == set(range(12))
    with pytest.raises(ValueError, match="folds must be >= 2"):
        preprocessing.out_of_fold_label_probability(lambda s: trained(Constant(), s), data, folds=1)


def test_filter_label_noise_runs_and_reuses_its_models_at_another_threshold(monkeypatch):
    reviews = preprocessing.noisy_reviews(n_train=300, steps=2, device="cpu")
    table, quality = preprocessing.filter_label_noise(reviews)
    assert list(table.data) == ["noisy", "filtered"]
    assert set(quality) == {"precision", "recall", "close_share_all", "close_share_clean_dropped"}
    noisy, filtered = table.set_index("data").loc["noisy"], table.set_index("data").loc["filtered"]
    assert filtered.train_seconds > noisy.train_seconds  # the out-of-fold models are part of its cost
    # the table and the filter's quality count the same examples: what was flipped, dropped and left
    flipped = noisy.label_noise * noisy.examples
    dropped = noisy.examples - filtered.examples
    assert dropped == pytest.approx(flipped * quality["recall"] / quality["precision"])
    assert filtered.label_noise * filtered.examples == pytest.approx(flipped * (1 - quality["recall"]))
    # another threshold trains one classifier only, and keeps at least the examples the higher one kept
    trained = []
    fit = reviews.fit
    monkeypatch.setattr(reviews, "fit", lambda subset: trained.append(len(subset["labels"])) or fit(subset))
    laxer, _ = preprocessing.filter_label_noise(reviews, threshold=0.4)
    assert trained == [laxer.examples[1]] and laxer.examples[1] >= filtered.examples
    assert laxer.iloc[0].to_dict() == table.iloc[0].to_dict()  # the same unfiltered model
    with pytest.raises(ValueError, match="threshold"):
        preprocessing.filter_label_noise(reviews, threshold=1.5)


def test_run_and_its_tradeoffs(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    tiny = secrets.SecretsConfig(
        copies=(1, 2), per_copy=2, filler_per_bucket=2, size=ModelSize(1, 32, 2), near_duplicates=True, epochs=1.0
    )
    config = preprocessing.Config(
        secrets=tiny, n_reviews=200, classifier_steps=2, mention_buckets=(0, 2), mention_per_bucket=3
    )
    run = preprocessing.run(config, seed=0, device="cpu", progress=False)
    assert len(run.deduped.corpus) < len(run.raw.corpus) and run.deduped.filter_seconds > 0
    assert len(run.mentions) == 2 * 3 * 4 and (run.mentions.normalised == run.mentions.normalised.str.lower()).all()
    recorded = preprocessing.tradeoffs(run)
    assert [t.mitigation for t in recorded] == ["near-duplicate removal", "label-noise filtering"]
    assert recorded[0].error == (run.raw.table.extracted.mean(), run.deduped.table.extracted.mean())
    noisy, filtered = run.label_noise.set_index("data").loc["noisy"], run.label_noise.set_index("data").loc["filtered"]
    assert recorded[1].error == (noisy.label_noise, filtered.label_noise)
    assert all(t.page == "ch04_5_preprocessing" for t in recorded)
    assert preprocessing.Config.for_scale("full").secrets.near_duplicates


def test_mention_table_counts_every_statement():
    world = bucket_world((0, 2), 3, seed=0)
    table = preprocessing.mention_table(world)
    assert len(table) == sum(world.exposures) * len(world.attributes)
