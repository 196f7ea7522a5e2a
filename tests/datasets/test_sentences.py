import pytest

from halluc_lib.core.tokenizer import build_tokenizer
from halluc_lib.datasets import sentences


def test_spurious_sentences_and_encoding():
    frame = sentences.spurious_token_sentences(2000, agreement=0.95, seed=0)
    assert frame.marker_agrees.mean() == pytest.approx(0.95, abs=0.02)
    marker = frame.text.str.split().str[-2]
    assert set(marker) == set(sentences.MARKERS)
    tok = build_tokenizer(sentences.text_vocabulary())
    enc = sentences.encode_sentences(frame.head(5), tok)
    assert (enc["input_ids"][:, 0] == tok.cls_token_id).all()
    assert tok.unk_token_id not in enc["input_ids"]
    assert enc["labels"].tolist() == frame.head(5).label.tolist()


def test_review_labels_follow_the_words():
    frame = sentences.review_sentences(200, seed=1)
    assert (frame.balance != 0).all()
    assert ((frame.balance > 0).astype(int) == frame.label).all()
    marked = sentences.review_sentences(200, marker_agreement=1.0, seed=1)
    markers = marked.text.str.split().str[-2]
    assert (markers == [sentences.MARKERS[y] for y in marked.label]).all()
    noisy = sentences.review_sentences(2000, label_noise=0.25, seed=1)
    assert 0.2 < ((noisy.balance > 0).astype(int) != noisy.label).mean() < 0.3
    with pytest.raises(ValueError, match="marker_agreement must be in"):
        sentences.review_sentences(5, marker_agreement=2.0)
