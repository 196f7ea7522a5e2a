import pytest
import torch

from halluc_lib.core import models
from halluc_lib.core import tokenizer as tokmod
from halluc_lib.core.world import build_corpus


def test_every_corpus_word_is_in_vocabulary(tiny_world, tokenizer):
    ids = tokenizer(build_corpus(tiny_world), add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in {i for doc in ids for i in doc}
    answer = tiny_world.values[0][0]
    assert len(tokenizer(answer, add_special_tokens=False)["input_ids"]) == 1


def test_special_tokens(tokenizer):
    for name in ("pad_token", "eos_token", "mask_token", "cls_token", "sep_token", "unk_token"):
        assert getattr(tokenizer, name) is not None
    assert tokenizer.convert_tokens_to_ids(tokmod.IDK_TOKEN) != tokenizer.unk_token_id


def test_tokenizer_is_deterministic_and_saves(tmp_path, tiny_world, tokenizer):
    assert tokmod.world_tokenizer(tiny_world).get_vocab() == tokenizer.get_vocab()
    tokmod.save_tokenizer(tokenizer, tmp_path)
    loaded = tokmod.load_tokenizer(tmp_path)
    text = "Baba Baban was born in Lisbon ."
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]


def test_tokenizer_bad_input(tmp_path):
    with pytest.raises(TypeError, match="not a single string"):
        tokmod.build_tokenizer("hello world")
    with pytest.raises(TypeError, match="must contain strings"):
        tokmod.build_tokenizer([1, 2])
    with pytest.raises(ValueError, match="no words"):
        tokmod.build_tokenizer(["", "  "])
    with pytest.raises(FileNotFoundError, match="directory"):
        tokmod.load_tokenizer(tmp_path / "missing")


def test_tiny_gpt_size_and_forward(tokenizer):
    model = models.tiny_gpt(tokenizer)
    assert 350_000 < models.count_parameters(model) < 600_000
    ids = torch.randint(0, len(tokenizer), (2, 7))
    assert model(input_ids=ids).logits.shape == (2, 7, len(tokenizer))


def test_tiny_gpt_names_its_loss_and_it_is_the_shifted_cross_entropy(tokenizer):
    """transformers falls back, with a warning in every page's output, for a loss type it does not know."""
    from transformers.loss.loss_utils import LOSS_MAPPING

    model = models.tiny_gpt(tokenizer, n_layer=1, n_embd=32, n_head=2)
    assert model.loss_type in LOSS_MAPPING
    ids = torch.randint(0, len(tokenizer), (2, 7))
    out = model(input_ids=ids, labels=ids)
    by_hand = torch.nn.functional.cross_entropy(out.logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
    torch.testing.assert_close(out.loss, by_hand)


def test_tiny_berts(tokenizer):
    mlm = models.tiny_bert_mlm(tokenizer, n_layer=1, hidden=32, n_head=2)
    ids = torch.randint(5, len(tokenizer), (2, 6))
    assert mlm(input_ids=ids).logits.shape == (2, 6, len(tokenizer))
    clf = models.tiny_bert_classifier(tokenizer, 3, n_layer=1, hidden=32, n_head=2)
    out = clf(input_ids=ids, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and out.loss.ndim == 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda t: models.tiny_gpt(t, n_layer=0), "n_layer must be > 0"),
        (lambda t: models.tiny_gpt(t, n_embd=30, n_head=4), "n_embd must be divisible by n_head"),
        (lambda t: models.tiny_gpt(t, dropout=1.0), r"dropout must be in \[0, 1\)"),
        (lambda t: models.tiny_bert_mlm(t, hidden=30, n_head=4), "hidden must be divisible by n_head"),
        (lambda t: models.tiny_bert_classifier(t, 1), "num_labels must be >= 2"),
    ],
)
def test_model_bad_input(tokenizer, build, message):
    with pytest.raises(ValueError, match=message):
        build(tokenizer)


def test_model_needs_a_tokenizer():
    with pytest.raises(TypeError, match="tokenizer must be a Hugging Face tokenizer"):
        models.tiny_gpt("not a tokenizer")
