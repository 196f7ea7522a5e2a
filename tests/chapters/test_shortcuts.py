import pytest
import torch

from halluc_lib.chapters import shortcuts
from halluc_lib.core import classify
from halluc_lib.core.tokenizer import build_tokenizer
from halluc_lib.datasets import digits, sentences


def test_colored_digits_follow_the_protocol():
    data = digits.colored_digits(seed=0)
    assert set(data) == {"train 1", "train 2", "test"}
    total = sum(len(d["labels"]) for d in data.values())
    assert total == 1797
    for name, agreement in (("train 1", 0.9), ("train 2", 0.8), ("test", 0.1)):
        d = data[name]
        color = d["pixels"].sum((2, 3)).argmax(1)
        assert (color == d["labels"]).float().mean().item() == pytest.approx(agreement, abs=0.05)
        shape_label = (d["digits"] < 5).long()
        assert (shape_label == d["labels"]).float().mean().item() == pytest.approx(0.75, abs=0.05)
        assert d["pixels"].shape[1:] == (2, 8, 8)


def test_digit_models_train_and_score():
    data = digits.colored_digits(seed=1)
    model, scores = shortcuts.train_digit_model(data, color_blind=True, steps=20, seed=0)
    assert set(scores) == {"train", "train 1", "train 2", "test"}
    assert all(0 <= v <= 1 for v in scores.values())
    out = model(pixels=data["test"]["pixels"][:3])
    assert out.logits.shape == (3, 2) and out.loss is None


def test_spurious_sentences_and_encoding():
    frame = sentences.spurious_token_sentences(2000, agreement=0.95, seed=0)
    assert frame.marker_agrees.mean() == pytest.approx(0.95, abs=0.02)
    marker = frame.text.str.split().str[-2]
    assert set(marker) == set(sentences.MARKERS)
    tok = build_tokenizer(sentences.text_vocabulary())
    enc = sentences.encode_sentences(frame.head(5), tok)
    assert (enc["input_ids"][:, 0] == tok.cls_token_id).all()
    assert tok.unk_token_id not in enc["input_ids"]
    model = shortcuts.train_text_classifier(tok, frame.head(64), steps=3, seed=0, batch_size=16)
    assert 0 <= classify.accuracy(model, enc) <= 1


def test_bad_input():
    with pytest.raises(ValueError, match="label_noise"):
        digits.colored_digits(label_noise=2)
    with pytest.raises(ValueError, match="environments"):
        digits.colored_digits(environments=())
    with pytest.raises(ValueError, match="agreement"):
        sentences.spurious_token_sentences(10, agreement=1.5)
    with pytest.raises(ValueError, match="same number of tokens"):
        import pandas as pd

        tok = build_tokenizer(["a b c"])
        sentences.encode_sentences(pd.DataFrame({"text": ["a", "a b"], "label": [0, 1], "marker_agrees": [1, 1]}), tok)
    assert len(sentences.NORTHERN) == 25


def test_domain_shifted_digits_and_imbalance_table():
    data = digits.domain_shifted_digits(0.1, test_size=200, seed=0)
    assert len(data["test majority"]["labels"]) == len(data["test minority"]["labels"]) == 200
    maj, mino = data["test majority"]["pixels"], data["test minority"]["pixels"]
    assert torch.allclose(maj[:, 0] + mino[:, 0], torch.ones_like(maj[:, 0])), "minority is the inverted rendering"
    assert 0.05 < data["minority_count"] / len(data["train"]["labels"]) < 0.15
    with pytest.raises(ValueError, match="minority_share"):
        digits.domain_shifted_digits(1.5)
