import numpy as np
import pytest
import torch

from halluc_lib.core import batching


def test_length_grouped_batches_cover_every_example_once():
    lengths = [5, 3, 5, 4, 3, 5, 4, 4, 3]
    batches = batching.length_grouped_batches(lengths, 4, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))
    assert [len(b) for b in batches].count(4) == 2
    # grouped: within each batch, lengths differ little
    assert all(np.ptp(np.asarray(lengths)[b]) <= 1 for b in batches)


def test_pad_right_masks_padding_in_labels():
    ids, labels = batching.pad_right([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert labels.tolist() == [[1, 2, 3], [4, -100, -100]]


def test_lm_batches_are_a_pure_function_of_seed_epoch_index():
    docs = [[7] * n for n in (3, 5, 4, 6, 2, 5, 3)]
    a = batching.LMBatches(docs, batch_size=3, eos_id=1, seed=0)
    b = batching.LMBatches(docs, batch_size=3, eos_id=1, seed=0)
    assert a.batches_per_epoch() == 3
    assert a.n_tokens() == sum(len(d) + 1 for d in docs)
    for epoch, index in [(0, 0), (1, 2), (0, 1)]:
        x, y = a.batch(epoch, index), b.batch(epoch, index)
        assert torch.equal(x["input_ids"], y["input_ids"])
    assert (a.batch(0, 0)["input_ids"][:, 0] == 1).all(), "every document starts with the separator"
    epoch0 = sum(batching.count_tokens(a.batch(0, i)) for i in range(3))
    assert epoch0 == a.n_tokens()


def test_lm_batches_from_texts(tokenizer):
    batches = batching.LMBatches.from_texts(["Baba Baban was born in Lisbon ."] * 4, tokenizer, batch_size=2)
    batch = batches.batch(0, 0)
    assert batch["input_ids"].shape == (2, 8)
    assert tokenizer.unk_token_id not in batch["input_ids"]


def test_tensor_batches():
    t = {"x": torch.arange(10), "y": torch.arange(10) * 2}
    src = batching.TensorBatches(t, batch_size=3, seed=0)
    assert src.batches_per_epoch() == 3
    b = src.batch(1, 0)
    assert torch.equal(b["y"], b["x"] * 2)
    assert batching.count_tokens({"input_ids": torch.ones(2, 3), "attention_mask": torch.tensor([[1, 1, 0]] * 2)}) == 4
    assert batching.count_tokens({"input_ids": torch.ones(2, 3, dtype=torch.long)}) == 6
    assert batching.count_tokens({"pixels": torch.ones(5, 2)}) == 5


def test_tensor_batches_are_a_pure_function_of_epoch_and_index_whatever_was_asked_before():
    t = {"x": torch.arange(10)}
    fresh = lambda epoch, index: batching.TensorBatches(t, batch_size=3, seed=5).batch(epoch, index)  # noqa: E731
    src = batching.TensorBatches(t, batch_size=3, seed=5)
    for epoch, index in [(0, 0), (0, 2), (1, 1), (0, 1), (2, 0), (1, 1)]:
        assert torch.equal(src.batch(epoch, index)["x"], fresh(epoch, index)["x"])
    epoch = torch.cat([src.batch(3, i)["x"] for i in range(src.batches_per_epoch())])
    assert len(set(epoch.tolist())) == len(epoch) == 9  # an epoch draws without replacement
    assert not torch.equal(src.batch(0, 0)["x"], src.batch(1, 0)["x"])  # and reshuffles every epoch


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: batching.LMBatches([], batch_size=2, eos_id=0), "documents must not be empty"),
        (lambda: batching.LMBatches([[1]], batch_size=0, eos_id=0), "batch_size must be > 0"),
        (lambda: batching.TensorBatches({}, batch_size=1), "at least one named tensor"),
        (
            lambda: batching.TensorBatches({"a": torch.ones(3), "b": torch.ones(4)}, batch_size=1),
            "same length",
        ),
        (lambda: batching.TensorBatches({"a": torch.ones(3)}, batch_size=4), "batch_size must be <="),
    ],
)
def test_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_context_tokens_are_read_but_not_trained_on(tokenizer):
    batches = batching.LMBatches.from_contexts_and_targets(
        ["Baba Baban was born in Lisbon ."], ["Baba Baban was born in Lisbon ."], tokenizer, batch_size=1
    )
    batch = batches.batch(0, 0)
    assert batch["input_ids"].shape == (1, 15)
    assert (batch["labels"][0, :8] == batching.IGNORE_INDEX).all()
    assert torch.equal(batch["labels"][0, 8:], batch["input_ids"][0, 8:])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: batching.LMBatches([[1, 2]], batch_size=1, eos_id=0, context_lengths=[1, 2]), "one entry per"),
        (lambda: batching.LMBatches([[1, 2]], batch_size=1, eos_id=0, context_lengths=[3]), "between 0 and"),
    ],
)
def test_context_lengths_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_contexts_and_targets_must_pair_up(tokenizer):
    with pytest.raises(ValueError, match="equally long"):
        batching.LMBatches.from_contexts_and_targets(["a"], [], tokenizer, batch_size=1)
