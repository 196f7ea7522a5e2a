import pytest
import torch

from halluc_lib.chapters import shortcuts
from halluc_lib.core import classify
from halluc_lib.core.tokenizer import build_tokenizer
from halluc_lib.datasets import digits, sentences
from halluc_lib.datasets.sentences import encode_sentences


def test_the_colour_blind_model_cannot_see_colour():
    data = digits.colored_digits(seed=1)
    blind, scores = shortcuts.train_digit_model(data, color_blind=True, steps=20, seed=0, device="cpu")
    plain, _ = shortcuts.train_digit_model(data, color_blind=False, steps=20, seed=0, device="cpu")
    assert set(scores) == {"train", "train 1", "train 2", "test"}
    pixels = data["test"]["pixels"][:16]
    recoloured = pixels.flip(1)  # red ink becomes green and green red
    assert torch.equal(blind(pixels=pixels).logits, blind(pixels=recoloured).logits)
    assert not torch.equal(plain(pixels=pixels).logits, plain(pixels=recoloured).logits)
    assert scores["train"] == classify.accuracy(blind, classify.concat([data["train 1"], data["train 2"]]))


def test_run_scores_both_experiments():
    config = shortcuts.Config(digit_steps=10, text_steps=3, n_text_train=64, n_text_test=32)
    run = shortcuts.run(config, seed=0, device="cpu")
    assert run.text_test_accuracy == classify.accuracy(run.text_model, encode_sentences(run.test_frame, run.tokenizer))
    assert run.test_frame.marker_agrees.mean() < 0.3 < 0.7 < run.train_frame.marker_agrees.mean()
    with pytest.raises(ValueError, match="train_agreement"):
        shortcuts.Config(train_agreement=1.5)


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
