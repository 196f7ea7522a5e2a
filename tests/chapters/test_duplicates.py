import pandas as pd
import pytest

from halluc_lib.chapters import duplicates
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets.secrets import SecretsConfig, extraction_rate

TINY = SecretsConfig(
    copies=(1, 4), per_copy=3, filler_buckets=(1,), filler_per_bucket=4, size=ModelSize(1, 32, 2), batch_size=4, steps=6
)


def test_run_reports_the_extraction_rate_per_copy_count():
    run = duplicates.run(duplicates.Config(TINY), seed=0, device="cpu", progress=False)
    assert run.rates.copies.tolist() == [1, 4]
    by_hand = run.trained.table.groupby("copies").extracted.mean()
    assert run.rates.extraction_rate.tolist() == pytest.approx(by_hand.tolist())
    assert run.trained.corpus.count(run.trained.secrets[-1].text) == 4  # a 4-copy secret is in the corpus 4 times
    # the exercise's model: the same corpus with one copy of each document, in order
    assert run.deduped.corpus == list(dict.fromkeys(run.trained.corpus))
    assert run.deduped.corpus.count(run.trained.secrets[-1].text) == 1
    with pytest.raises(TypeError, match="config must be a duplicates.Config"):
        duplicates.run(TINY)


def test_extraction_rate_by_hand():
    table = pd.DataFrame(
        {
            "copies": [1, 1, 4, 4],
            "extracted": [False, True, True, True],
            "prefix_matched": [0, 6, 6, 6],
            "well_formed": [True, True, True, False],
        }
    )
    rates = extraction_rate(table).set_index("copies")
    assert rates.extraction_rate.tolist() == [0.5, 1.0]
    assert rates.tokens_matched.tolist() == [3.0, 6.0]
    assert rates.well_formed.tolist() == [1.0, 0.5]
    assert rates.n.tolist() == [2, 2]


def test_scales_are_the_secrets_experiment_scales():
    for scale in ("quick", "full"):
        assert duplicates.Config.for_scale(scale).secrets == SecretsConfig.for_scale(scale)
    assert duplicates.Config.for_scale("full").secrets.per_copy > duplicates.Config.for_scale("quick").secrets.per_copy
