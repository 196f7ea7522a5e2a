import pytest
import torch

from halluc_lib.datasets import digits


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


def test_domain_shifted_digits_and_imbalance_table():
    data = digits.domain_shifted_digits(0.1, test_size=200, seed=0)
    assert len(data["test majority"]["labels"]) == len(data["test minority"]["labels"]) == 200
    maj, mino = data["test majority"]["pixels"], data["test minority"]["pixels"]
    assert torch.allclose(maj[:, 0] + mino[:, 0], torch.ones_like(maj[:, 0])), "minority is the inverted rendering"
    assert 0.05 < data["minority_count"] / len(data["train"]["labels"]) < 0.15
    with pytest.raises(ValueError, match="minority_share"):
        digits.domain_shifted_digits(1.5)
