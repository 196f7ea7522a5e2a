import pandas as pd
import pytest
import torch

from halluc_lib.chapters import shortcuts
from halluc_lib.core import classify
from halluc_lib.core.tokenizer import build_tokenizer
from halluc_lib.core.world import CITIES
from halluc_lib.datasets import digits, sentences
from halluc_lib.datasets.sentences import encode_sentences


def test_the_colour_blind_model_cannot_see_colour():
    data = digits.colored_digits(seed=1)
    blind, scores = shortcuts.train_digit_model(data, color_blind=True, steps=20, seed=0, device="cpu")
    plain, _ = shortcuts.train_digit_model(data, color_blind=False, steps=20, seed=0, device="cpu")
    pixels = data["test"]["pixels"][:16]
    recoloured = pixels.flip(1)  # red ink becomes green and green red
    assert torch.equal(blind(pixels=pixels).logits, blind(pixels=recoloured).logits)
    assert not torch.equal(plain(pixels=pixels).logits, plain(pixels=recoloured).logits)
    assert scores["train"] == classify.accuracy(blind, classify.concat([data["train 1"], data["train 2"]]))
    assert scores["test"] == classify.accuracy(blind, data["test"])  # the test split is scored, never trained on


def test_run_builds_the_text_splits_with_the_configured_agreement():
    config = shortcuts.Config(
        digit_steps=10, text_steps=3, n_text_train=64, n_text_test=32, train_agreement=1.0, test_agreement=0.0
    )
    run = shortcuts.run(config, seed=0, device="cpu")
    assert run.text_test_accuracy == classify.accuracy(run.text_model, encode_sentences(run.test_frame, run.tokenizer))
    # agreement 1 in training and 0 at test: every training marker names the label, every test marker the other one
    assert run.train_frame.marker_agrees.all() and not run.test_frame.marker_agrees.any()
    for frame in (run.train_frame, run.test_frame):
        markers = frame.text.str.split().str[7]
        named = markers.map(sentences.MARKERS.index)
        assert ((named == frame.label) == frame.marker_agrees).all()
    with pytest.raises(ValueError, match="train_agreement"):
        shortcuts.Config(train_agreement=1.5)


def test_the_city_rule_reads_only_the_city():
    clean = sentences.spurious_token_sentences(200, agreement=0.5, label_noise=0.0, seed=0)
    assert shortcuts.city_rule_accuracy(clean) == 1.0
    flipped = sentences.spurious_token_sentences(200, agreement=0.5, label_noise=1.0, seed=0)
    assert shortcuts.city_rule_accuracy(flipped) == 0.0
    north = next(c for c in CITIES if c in sentences.NORTHERN)
    south = next(c for c in CITIES if c not in sentences.NORTHERN)
    frame = pd.DataFrame(
        {"text": [f"Baba Baban was born in {city} , reportedly ." for city in (north, south)], "label": [1, 1]}
    )
    assert shortcuts.city_rule_accuracy(frame) == 0.5  # the same marker, but only the northern city is labelled 1


def test_bad_input():
    with pytest.raises(ValueError, match="label_noise"):
        digits.colored_digits(label_noise=2)
    with pytest.raises(ValueError, match="environments"):
        digits.colored_digits(environments=())
    with pytest.raises(ValueError, match="agreement"):
        sentences.spurious_token_sentences(10, agreement=1.5)
    with pytest.raises(ValueError, match="same number of tokens"):
        tok = build_tokenizer(["a b c"])
        sentences.encode_sentences(pd.DataFrame({"text": ["a", "a b"], "label": [0, 1], "marker_agrees": [1, 1]}), tok)
