import pytest
import torch

from halluc_lib.chapters import balancing
from halluc_lib.core.classify import concat
from halluc_lib.core.models import DigitMLP
from halluc_lib.datasets.digits import colored_digits, domain_shifted_digits


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


def test_reweighting_raises_the_worst_group_of_colored_digits():
    """The page's finding in small: plain training follows the colour and fails where it contradicts the label;
    reweighting makes those examples weigh as much as the rest, and the worst group rises."""
    data = colored_digits(seed=0)
    train_data = balancing.color_groups(concat([data["train 1"], data["train 2"]]))
    test_data = balancing.color_groups(data["test"])
    worst = {}
    for method in ("plain", "reweighting"):
        model = balancing.train_balanced(DigitMLP, train_data, method, n_groups=4, steps=200, seed=0).model
        worst[method] = balancing.group_accuracy(model, test_data).accuracy.min()
    assert worst["reweighting"] - worst["plain"] >= 0.15


def test_balancing_experiment_table():
    """Every method is scored on every example of its dataset's test split, group by group: the rare domain's
    test holds each digit in both inks, so its inverted-ink groups (2 and 3) are half of it."""
    methods = balancing.compare_methods(steps=2, seed=0)
    shifted = domain_shifted_digits(0.01, seed=0)
    tests = {
        "colored digits (2.3)": balancing.color_groups(colored_digits(seed=0)["test"]),
        "rare domain (2.4)": balancing.domain_groups(concat([shifted["test majority"], shifted["test minority"]])),
    }
    assert set(methods.method) == set(balancing.METHODS)
    for (dataset, method), rows in methods.groupby(["dataset", "method"]):
        expected = torch.bincount(tests[dataset]["groups"], minlength=4).tolist()
        assert rows.sort_values("group").n.tolist() == expected, (dataset, method)
    rare = methods[(methods.dataset == "rare domain (2.4)") & (methods.method == "plain")].set_index("group")
    assert rare.n[2] + rare.n[3] == len(shifted["test minority"]["labels"])
