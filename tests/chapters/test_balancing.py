import pytest
import torch

from halluc_lib.chapters import balancing
from halluc_lib.core.classify import concat
from halluc_lib.core.models import DigitMLP
from halluc_lib.datasets.digits import colored_digits


def test_inverse_frequency_weights_equalise_groups():
    groups = torch.tensor([0, 0, 0, 1])
    w = balancing.inverse_frequency_weights(groups)
    assert w.mean().item() == pytest.approx(1)
    assert w[:3].sum().item() == pytest.approx(w[3].item())
    with pytest.raises(ValueError, match="groups must not be empty"):
        balancing.inverse_frequency_weights(torch.tensor([]))


def test_weighted_loss_and_group_dro():
    inner = DigitMLP()
    x = torch.rand(6, 2, 8, 8)
    y = torch.tensor([0, 1, 0, 1, 0, 1])
    g = torch.tensor([0, 0, 1, 1, 2, 2])
    plain = balancing.WeightedLoss(inner)(pixels=x, labels=y).loss
    same = balancing.WeightedLoss(inner)(pixels=x, labels=y, weights=torch.ones(6)).loss
    assert plain.item() == pytest.approx(same.item())
    dro = balancing.GroupDRO(inner, n_groups=4, step_size=1.0)
    dro.train()
    dro(pixels=x, labels=y, groups=g)
    assert dro.q.sum().item() == pytest.approx(1) and dro.q[3].item() < dro.q[:3].min().item()
    with pytest.raises(ValueError, match="groups must be given"):
        dro(pixels=x, labels=y)
    with pytest.raises(ValueError, match="step_size"):
        balancing.GroupDRO(inner, 2, step_size=0)


def test_resampled_batches_follow_the_weights():
    t = {"x": torch.arange(100)}
    w = torch.zeros(100)
    w[:10] = 1
    src = balancing.ResampledBatches(t, sampling_weights=w, batch_size=50, seed=0)
    assert (src.batch(0, 0)["x"] < 10).all()
    with pytest.raises(ValueError, match="sampling_weights"):
        balancing.ResampledBatches(t, sampling_weights=torch.zeros(100), batch_size=5)


def test_train_balanced_every_method():
    data = colored_digits(seed=0)
    train_data = balancing.color_groups(concat([data["train 1"], data["train 2"]]))
    test_data = balancing.color_groups(data["test"])
    for method in balancing.METHODS:
        model = balancing.train_balanced(DigitMLP, train_data, method, n_groups=4, steps=3, seed=0).model
        table = balancing.group_accuracy(model, test_data)
        assert table.group.tolist() == [0, 1, 2, 3] and table.n.sum() == len(test_data["labels"])
    with pytest.raises(ValueError, match="method must be one of"):
        balancing.train_balanced(DigitMLP, train_data, "magic", n_groups=4, steps=1)


def test_balancing_experiment_table():
    table = balancing.compare_methods(steps=2, seed=0)
    assert set(table.method) == set(balancing.METHODS) and table.dataset.nunique() == 2
