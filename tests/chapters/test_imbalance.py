import pytest

from halluc_lib.chapters import imbalance
from halluc_lib.datasets.digits import domain_shifted_digits


def test_a_domain_missing_from_training_is_answered_worse():
    """The page's effect on a short run: with no inverted digits in training the minority domain is answered near
    chance while the majority is learned; with half of training inverted, the gap closes."""
    run = imbalance.run(imbalance.Config(shares=(0.0, 0.5), steps=150), seed=0, device="cpu")
    table = run.results.set_index(["minority_share", "group"])
    assert table.minority_examples[(0.0, "minority")] == 0
    assert table.minority_examples[(0.5, "minority")] == domain_shifted_digits(0.5, seed=0)["minority_count"]
    gap_without = table.accuracy[(0.0, "majority")] - table.accuracy[(0.0, "minority")]
    gap_half = table.accuracy[(0.5, "majority")] - table.accuracy[(0.5, "minority")]
    assert gap_without > 0.2
    assert gap_without > gap_half + 0.2


def test_config():
    assert imbalance.Config.for_scale("full").steps > imbalance.Config.for_scale("quick").steps
    with pytest.raises(ValueError, match="shares must name"):
        imbalance.Config(shares=())
    with pytest.raises(ValueError, match="shares must be in"):
        imbalance.Config(shares=(1.5,))
    with pytest.raises(TypeError, match="config must be an imbalance.Config"):
        imbalance.run({})
