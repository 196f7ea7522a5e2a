import numpy as np
import pytest
import torch

from halluc_lib.datasets import tinted_digits as td


def test_the_split_is_disjoint_and_covers_every_digit():
    split = td.split_digits(200, 597, seed=1)
    parts = [split.pretrain, split.downstream, split.test]
    assert [len(p) for p in parts[1:]] == [200, 597]
    assert len(np.unique(np.concatenate(parts))) == sum(len(p) for p in parts) == 1797
    with pytest.raises(ValueError, match="downstream_size \\+ test_size must be below 1797"):
        td.split_digits(1000, 797)


def test_the_tint_agrees_with_the_group_as_often_as_asked_and_is_the_only_colour():
    split = td.split_digits(200, 597, seed=0)
    data = td.tinted_digits(split.pretrain, agreement=0.95, copies=2, strength=0.5, size=16, seed=0)
    assert data["pixel_values"].shape == (2 * len(split.pretrain), 3, 16, 16)
    assert torch.equal(data["groups"], (data["digits"] >= 5).long())
    assert (data["tints"] == data["groups"]).float().mean().item() == pytest.approx(0.95, abs=0.02)
    # the dominant channel is the tint's; blue is dimmest in both tints
    red, green, blue = data["pixel_values"].sum((2, 3)).unbind(1)
    assert torch.equal((green > red).long(), data["tints"])
    assert bool((blue <= torch.minimum(red, green) + 1e-6).all())
    balanced = td.tinted_digits(split.test, agreement=0.5, seed=0)
    assert (balanced["tints"] == balanced["groups"]).float().mean().item() == pytest.approx(0.5, abs=0.06)


def test_swapping_the_tint_keeps_the_shape():
    data = td.tinted_digits(np.arange(20), agreement=1.0, seed=0)
    swapped = td.swap_tints(data["pixel_values"])
    assert torch.equal(swapped.sum(1), data["pixel_values"].sum(1))
    assert torch.equal(td.swap_tints(swapped), data["pixel_values"])
    red, green, _ = swapped.sum((2, 3)).unbind(1)
    assert torch.equal((green > red).long(), 1 - data["tints"])


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="agreement"):
        td.tinted_digits(np.arange(3), agreement=1.5)
    with pytest.raises(ValueError, match="strength"):
        td.palette(-0.1)
    with pytest.raises(ValueError, match="copies"):
        td.tinted_digits(np.arange(3), agreement=0.5, copies=0)
