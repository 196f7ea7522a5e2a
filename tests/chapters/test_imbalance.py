import pytest

from halluc_lib.chapters import imbalance


def test_run_reports_both_groups_at_every_share():
    run = imbalance.run(imbalance.Config(shares=(0.0, 0.5), steps=5), seed=0, device="cpu")
    table = run.results
    assert table.groupby("minority_share").group.apply(set).tolist() == [{"majority", "minority"}] * 2
    assert table.set_index(["minority_share", "group"]).minority_examples[(0.0, "minority")] == 0


def test_config():
    assert imbalance.Config.for_scale("full").steps > imbalance.Config.for_scale("quick").steps
    with pytest.raises(ValueError, match="shares must name"):
        imbalance.Config(shares=())
    with pytest.raises(ValueError, match="shares must be in"):
        imbalance.Config(shares=(1.5,))
    with pytest.raises(TypeError, match="config must be an imbalance.Config"):
        imbalance.run({})
