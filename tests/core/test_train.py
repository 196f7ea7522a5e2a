import pytest
import torch

from halluc_lib.core import batching, models, train
from halluc_lib.core.world import build_corpus


@pytest.fixture
def lm_batches(tiny_world, tokenizer):
    return batching.LMBatches.from_texts(build_corpus(tiny_world), tokenizer, batch_size=4, seed=0)


def _model(tokenizer):
    torch.manual_seed(0)
    return models.tiny_gpt(tokenizer, n_layer=1, n_embd=32, n_head=2, n_positions=64)


def test_loss_falls_and_history_is_tidy(tokenizer, lm_batches):
    model = _model(tokenizer)
    config = train.TrainConfig(steps=40, lr=1e-2, log_every=10, eval_every=20)
    calls = []

    def eval_fn(m, step):
        assert not m.training and not torch.is_grad_enabled()
        calls.append(step)
        return {"metric": float(step)}

    result = train.train(model, lm_batches, config, device="cpu", eval_fn=eval_fn, progress=False)
    assert result.finished and result.steps == 40
    assert list(result.history.columns) == ["step", "epoch", "loss", "lr"]
    assert result.history.loss.iloc[-1] < result.history.loss.iloc[0]
    assert calls == [0, 20, 40] and list(result.evals.step) == [0, 20, 40]
    assert result.tokens > 0 and result.tokens_per_second > 0


def test_lr_schedule_warms_up_then_decays():
    config = train.TrainConfig(steps=100, warmup_fraction=0.1, min_lr_ratio=0.1)
    lrs = [train.lr_multiplier(s, config) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] > lrs[50] > lrs[99] >= 0.1


def test_training_is_deterministic_on_cpu(tokenizer, lm_batches):
    results = []
    for _ in range(2):
        model = _model(tokenizer)
        train.train(model, lm_batches, train.TrainConfig(steps=10), device="cpu", progress=False)
        results.append(model.state_dict())
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])


def test_resumed_run_equals_uninterrupted_run(tmp_path, tokenizer, lm_batches):
    config = train.TrainConfig(steps=24, lr=1e-2, log_every=4, checkpoint_every=5)
    straight = _model(tokenizer)
    full = train.train(straight, lm_batches, config, device="cpu", progress=False)

    interrupted = _model(tokenizer)
    first = train.train(
        interrupted,
        lm_batches,
        config,
        device="cpu",
        checkpoint_dir=tmp_path,
        budget_steps=11,
        progress=False,
    )
    assert not first.finished and first.steps == 11
    assert train.latest_checkpoint(tmp_path).name == "step-0000011"
    resumed_model = _model(tokenizer)  # a fresh process would start from fresh weights
    torch.manual_seed(123)  # and a different RNG state, which the checkpoint restores
    second = train.train(resumed_model, lm_batches, config, device="cpu", checkpoint_dir=tmp_path, progress=False)
    assert second.finished and second.steps == 24
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    assert second.history.loss.tolist() == full.history.loss.tolist()
    assert len(list(tmp_path.glob("step-*"))) <= 2
    assert not list(tmp_path.glob(".*tmp"))


def test_checkpoint_files_load_without_pickle(tmp_path, tokenizer, lm_batches):
    train.train(
        _model(tokenizer),
        lm_batches,
        train.TrainConfig(steps=3),
        device="cpu",
        checkpoint_dir=tmp_path,
        progress=False,
    )
    ckpt = train.latest_checkpoint(tmp_path)
    assert (ckpt / "model.safetensors").exists()
    torch.load(ckpt / "optimizer.pt", weights_only=True)  # raises if anything would need pickle


def test_resume_with_different_config_is_refused(tmp_path, tokenizer, lm_batches):
    train.train(
        _model(tokenizer),
        lm_batches,
        train.TrainConfig(steps=6),
        device="cpu",
        checkpoint_dir=tmp_path,
        budget_steps=2,
        progress=False,
    )
    with pytest.raises(ValueError, match="different config"):
        train.train(
            _model(tokenizer),
            lm_batches,
            train.TrainConfig(steps=6, lr=1e-4),
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
        )
    assert train.latest_checkpoint(None) is None
    assert train.latest_checkpoint(tmp_path / "nothing") is None


def test_time_budget_stops_early(tokenizer, lm_batches):
    result = train.train(
        _model(tokenizer),
        lm_batches,
        train.TrainConfig(steps=10_000),
        device="cpu",
        budget_seconds=0.2,
        progress=False,
    )
    assert not result.finished and 0 < result.steps < 10_000


@pytest.mark.parametrize(("precision", "attention"), [("bf16", "eager"), ("fp32", "sdpa")])
def test_cpu_training_in_bf16_uses_eager_attention_and_gives_the_model_its_own_back(
    tokenizer, lm_batches, precision, attention
):
    model = _model(tokenizer)
    assert model.config._attn_implementation == "sdpa"
    seen = []
    train.train(
        model,
        lm_batches,
        train.TrainConfig(steps=2, eval_every=1, precision=precision),
        device="cpu",
        eval_fn=lambda m, s: seen.append(m.config._attn_implementation),
        progress=False,
    )
    assert seen and set(seen) == {attention}
    assert model.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precision_sets_the_autocast_of_the_forward_pass(tokenizer, lm_batches, precision, monkeypatch):
    seen = []
    forward = torch.nn.Linear.forward

    def spy(self, x):
        seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu"))
        return forward(self, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    model = _model(tokenizer)
    result = train.train(
        model, lm_batches, train.TrainConfig(steps=2, precision=precision), device="cpu", progress=False
    )
    assert set(seen) == ({False} if precision == "fp32" else {torch.bfloat16})
    assert all(p.dtype == torch.float32 for p in model.parameters()) and result.history.loss.notna().all()


def test_tracker_is_closed_when_training_fails(tokenizer, lm_batches):
    class Tracker:
        closed = False

        def log(self, rows, step, prefix):
            pass

        def close(self):
            Tracker.closed = True

    def broken_eval(model, step):
        raise RuntimeError("evaluation broke")

    config = train.TrainConfig(steps=4, eval_every=2)
    with pytest.raises(RuntimeError, match="evaluation broke"):
        train.train(_model(tokenizer), lm_batches, config, device="cpu", eval_fn=broken_eval, tracker=Tracker())
    assert Tracker.closed


def test_eval_rows_may_be_a_dataframe_or_list(tokenizer, lm_batches):
    import pandas as pd

    for rows in (pd.DataFrame([{"a": 1}, {"a": 2}]), [{"a": 1}], None):
        result = train.train(
            _model(tokenizer),
            lm_batches,
            train.TrainConfig(steps=2),
            device="cpu",
            eval_fn=lambda m, s, rows=rows: rows,
            progress=False,
        )
        assert len(result.evals) == (0 if rows is None else len(rows))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be > 0"),
        ({"steps": 5, "lr": 0}, "lr must be a positive number"),
        ({"steps": 5, "warmup_fraction": 1.0}, "warmup_fraction"),
        ({"steps": 5, "min_lr_ratio": 2}, "min_lr_ratio"),
        ({"steps": 5, "grad_clip": -1}, "grad_clip"),
        ({"steps": 5, "weight_decay": -1}, "weight_decay"),
        ({"steps": 5, "eval_every": 0}, "eval_every must be > 0"),
        ({"steps": 5, "precision": "fp16"}, r"precision must be one of \('auto', 'cuda-bf16'"),
    ],
)
def test_config_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train.TrainConfig(**kwargs)


def test_train_bad_input(tokenizer, lm_batches):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train.train("model", lm_batches, train.TrainConfig(steps=1))
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train.train(_model(tokenizer), lm_batches, {"steps": 1})
    with pytest.raises(ValueError, match="budget_steps must be > 0"):
        train.train(_model(tokenizer), lm_batches, train.TrainConfig(steps=1), budget_steps=0)
    with pytest.raises(ValueError, match="budget_seconds"):
        train.train(_model(tokenizer), lm_batches, train.TrainConfig(steps=1), budget_seconds=0)
