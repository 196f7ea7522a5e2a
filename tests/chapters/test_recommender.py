import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from halluc_lib.chapters import recommender as rec
from halluc_lib.core.files import load_with_card

SMALL = rec.Config(n_users=40, n_items=30, dim=4, shown_per_user=10, test_items_per_user=5)


@pytest.fixture(scope="module")
def data():
    return rec.simulate_logs(SMALL, seed=0)


def test_simulation_is_deterministic_and_consistent(data):
    again = rec.simulate_logs(SMALL, seed=0)
    assert data.log.equals(again.log) and data.test.equals(again.test)
    assert data.relevance.shape == (40, 30) and data.propensity.shape == (30,)
    labels = data.test.label.to_numpy()
    truth = data.relevance[data.test.user, data.test.item]  # test labels are draws from the true relevance
    assert labels[truth > 0.5].mean() > labels[truth < 0.5].mean() + 0.2
    assert (data.test.groupby("user").size() == 5).all()
    clicked = set(zip(data.log.user, data.log.item, strict=True))
    assert not any((u, i) in clicked for u, i in zip(data.test.user, data.test.item, strict=True))


def test_exposure_follows_popularity_not_taste(data):
    assert data.propensity.sum() == pytest.approx(SMALL.shown_per_user) and data.propensity.max() <= 1
    taste = data.relevance.mean(axis=0)
    assert abs(np.corrcoef(taste, data.propensity)[0, 1]) < 0.5


def test_exposure_propensity_caps_at_one_and_keeps_the_budget():
    theta = rec.exposure_propensity(np.arange(1, 101), 1.0, 40)
    assert theta.sum() == pytest.approx(40) and theta.max() == 1 and (np.diff(theta) <= 1e-12).all()
    assert (theta == 1).sum() > 1 and theta[-1] < 0.2


def test_config_checks():
    with pytest.raises(ValueError, match="shown_per_user"):
        rec.Config(n_items=10, test_items_per_user=2, shown_per_user=11)
    with pytest.raises(ValueError, match="test_items_per_user"):
        rec.Config(n_items=10, shown_per_user=5, test_items_per_user=6)
    with pytest.raises(ValueError, match="popularity_exponent"):
        rec.Config(popularity_exponent=-1)
    with pytest.raises(ValueError, match="mean_relevance"):
        rec.Config(mean_relevance=1.0)
    with pytest.raises(TypeError, match="Config"):
        rec.simulate_logs({})
    assert rec.Config.for_scale("full").n_users > rec.Config.for_scale().n_users


def test_save_and_load_roundtrip_refuses_tampering(data, tmp_path):
    path = rec.save_data(data, tmp_path / "logs.json")
    payload, card = load_with_card(path, "recommender data")
    log, test = rec.logs_from_payload(payload)
    assert log.equals(data.log.reset_index(drop=True)) and test.equals(data.test)
    assert card["seed"] == 0 and (tmp_path / "logs.md").read_text().startswith("# Data card: logs.json")
    payload = json.loads(path.read_text())
    payload["data"]["test"]["label"][0] = 1 - payload["data"]["test"]["label"][0]
    path.write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_with_card(path, "recommender data")
    with pytest.raises(FileNotFoundError, match="path"):
        load_with_card(tmp_path / "missing.json", "recommender data")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ValueError, match="not a recommender data file"):
        load_with_card(tmp_path / "other.json", "recommender data")


def test_ipw_loss_counts_a_click_one_over_propensity_times():
    logits = torch.tensor([0.0, 0.0])
    targets = torch.tensor([1.0, 0.0])
    plain = rec.weighted_log_loss(logits, targets)
    assert plain.item() == pytest.approx(np.log(2))
    weighted = rec.weighted_log_loss(logits, targets, torch.tensor([4.0, 4.0]))
    assert weighted.item() == pytest.approx(np.log(2))  # 4·log2 − 3·log2 for the click, log2 for the other
    logits = torch.tensor([2.0])
    one = rec.weighted_log_loss(logits, torch.tensor([1.0]), torch.tensor([2.0]))
    expected = -(2 * torch.nn.functional.logsigmoid(logits) - torch.nn.functional.logsigmoid(-logits))
    assert one.item() == pytest.approx(expected.item())


def test_popularity_propensity_is_clipped_and_monotone():
    log = pd.DataFrame({"user": [0, 1, 2, 0], "item": [0, 0, 0, 1]})
    theta = rec.popularity_propensity(log, 3, clip=0.1)
    assert theta[0] == 1 and theta[1] == pytest.approx((1 / 3) ** 0.5) and theta[2] == 0.1
    with pytest.raises(ValueError, match="clip"):
        rec.popularity_propensity(log, 3, clip=0)


def test_training_pairs_cover_every_pair(data):
    pairs = rec.training_pairs(data.log, 40, 30, propensity=np.full(30, 0.5))
    assert len(pairs["users"]) == 1200 and pairs["targets"].sum().item() == len(data.log)
    assert torch.all(pairs["weights"] == 2)


def test_train_mf_both_weightings(data):
    for weighting in rec.WEIGHTINGS:
        model, seconds = rec.train_mf(data.log, 40, 30, weighting, dim=4, epochs=1, batch_size=256, device="cpu")
        assert model.scores().shape == (40, 30) and seconds > 0
    with pytest.raises(ValueError, match="weighting must be one of"):
        rec.train_mf(data.log, 40, 30, "dro")


def test_ranking_metrics_on_a_known_case():
    test = pd.DataFrame({"user": [0, 0, 0, 1, 1], "item": [0, 1, 2, 0, 1], "label": [0, 1, 0, 0, 0]})
    scores = np.array([[0.9, 0.5, 0.1], [0.1, 0.2, 0.3]])
    out = rec.ndcg_recall_at_k(scores, test, k=1)
    assert out == {"NDCG@1": 0.0, "recall@1": 0.0}  # user 1 has no relevant item and is skipped
    out = rec.ndcg_recall_at_k(scores, test, k=2)
    assert out["recall@2"] == 1 and out["NDCG@2"] == pytest.approx(1 / np.log2(3))


def test_top_k_excludes_clicked_items_and_popularity_metrics():
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]])
    top = rec.top_k(scores, 2, exclude=pd.DataFrame({"user": [0], "item": [0]}))
    assert top.tolist() == [[1, 2], [0, 1]]
    popularity = np.array([100.0, 10.0, 5.0, 1.0])
    m = rec.popularity_metrics(top, popularity, head_share=0.25)
    assert m["ARP"] == pytest.approx((10 + 5 + 100 + 10) / 4) and m["APLT"] == pytest.approx(0.75)
    assert rec.gini([1, 1, 1, 1]) == pytest.approx(0) and rec.gini([0, 0, 0, 4]) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="counts"):
        rec.gini([0, 0])


def test_run_recommender_end_to_end():
    run = rec.run(dataclasses.replace(SMALL, k=3, epochs=1, mf_dim=4, batch_size=256), seed=0, device="cpu")
    assert list(run.table.index) == ["truth", "most popular", "MF plain", "MF ipw"]
    clicks = run.data.clicks_per_item.astype(float)
    for name, scores in run.scores.items():  # each row is its scores' metrics, its lists leaving clicked items out
        row = run.table.loc[name]
        recommended = rec.top_k(scores, 3, exclude=run.data.log)
        assert row["NDCG@5"] == rec.ndcg_recall_at_k(scores, run.data.test)["NDCG@5"]
        assert row["ARP"] == rec.popularity_metrics(recommended, clicks)["ARP"]
        assert not set(zip(np.repeat(np.arange(40), 3), recommended.ravel(), strict=True)) & set(
            zip(run.data.log.user, run.data.log.item, strict=True)
        )
    assert run.table.loc["truth", "ARP"] < run.table.loc["most popular", "ARP"]  # most-popular maximises ARP
    assert run.table["train_seconds"].isna().tolist() == [True, True, False, False]


def test_items_from_copies_and_freezes_the_pretrained_items(data):
    pretrained, _ = rec.train_mf(data.log, 40, 30, "plain", dim=4, epochs=1, batch_size=256, device="cpu")
    users, _ = rec.train_mf(
        data.log, 40, 30, "plain", dim=4, epochs=2, batch_size=256, device="cpu", items_from=pretrained, seed=1
    )
    # the item vectors and biases are the pretrained ones, untouched by training; the user vectors were trained
    assert torch.equal(users.items.weight, pretrained.items.weight)
    assert torch.equal(users.item_bias.weight, pretrained.item_bias.weight)
    torch.manual_seed(1)
    fresh = rec.MatrixFactorization(40, 30, 4)
    assert not torch.equal(users.users.weight, fresh.users.weight)
    with pytest.raises(ValueError, match="items_from must have 30 items of dimension 8"):
        rec.train_mf(data.log, 40, 30, "plain", dim=8, epochs=1, batch_size=256, device="cpu", items_from=pretrained)


def test_split_users_renumbers_the_new_users(data):
    old, new_log, new_test = rec.split_users(data, share_old=0.5)
    assert old.user.max() < 20 and new_log.user.min() >= 0 and new_test.user.max() < 20
    assert len(old) + len(new_log) == len(data.log)
    assert (new_test.item.to_numpy() == data.test[data.test.user >= 20].item.to_numpy()).all()
    with pytest.raises(ValueError, match="share_old"):
        rec.split_users(data, share_old=1.0)


def test_transfer_run_compares_the_ways_of_getting_item_vectors():
    small = dataclasses.replace(SMALL, k=3, epochs=1, mf_dim=4, batch_size=256)
    table = rec.transfer_run(small, seed=0, device="cpu").table
    assert list(table.index) == [
        "truth",
        "items pretrained plain",
        "items pretrained ipw",
        "items pretrained ipw, users fitted ipw",
        "trained on the new users' log",
    ]
    data = rec.simulate_logs(small, seed=0)
    _, new_log, new_test = rec.split_users(data)
    truth = data.relevance[20:]  # the truth row is the new users' own relevance, ranked like every row
    assert table.loc["truth", "NDCG@5"] == rec.ndcg_recall_at_k(truth, new_test)["NDCG@5"]
    recommended = rec.top_k(truth, 3, exclude=new_log)
    assert table.loc["truth", "ARP"] == rec.popularity_metrics(recommended, data.clicks_per_item.astype(float))["ARP"]
    with pytest.raises(TypeError, match="recommender.Config"):
        rec.transfer_run("quick")
