import numpy as np
import pytest
import torch

from halluc_lib.core import runtime


def test_auto_device_is_cpu_without_accelerators():
    assert runtime.resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    assert runtime.resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "tpu", "cpu:0", ""])
def test_unknown_device_names_accepted_values(bad):
    with pytest.raises(ValueError, match="device must be one of"):
        runtime.resolve_device(bad)


def test_device_type_error():
    with pytest.raises(TypeError, match="device"):
        runtime.resolve_device(3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="CUDA is not available"):
        runtime.resolve_device("cuda")


def test_scales():
    assert runtime.check_scale("quick") == "quick"
    with pytest.raises(ValueError, match=r"scale must be one of \('quick', 'full'\)"):
        runtime.check_scale("huge")
    with pytest.raises(TypeError, match="scale"):
        runtime.check_scale(1)


def test_seed_everything_repeats_draws():
    runtime.seed_everything(5)
    a = (np.random.rand(), torch.rand(1).item())
    runtime.seed_everything(5)
    assert (np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError, match="seed"):
        runtime.seed_everything(-1)


def test_setup_records_settings():
    s = runtime.setup(seed=1, scale="quick", device="cpu", threads=1)
    assert (s.seed, s.scale, s.device.type, s.threads) == (1, "quick", "cpu", 1)
    assert s.elapsed() >= 0
    assert torch.get_num_threads() == 1
    runtime.set_threads()


def test_validators():
    assert runtime.check_positive_int("n", 3) == 3
    assert runtime.check_positive_int("n", 0, allow_zero=True) == 0
    with pytest.raises(ValueError, match="n must be > 0"):
        runtime.check_positive_int("n", 0)
    with pytest.raises(TypeError, match="n must be an integer"):
        runtime.check_positive_int("n", 1.5)
    assert runtime.check_probability("p", 0.5) == 0.5
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        runtime.check_probability("p", 1.0, open_high=True)
    with pytest.raises(TypeError, match="p must be a number"):
        runtime.check_probability("p", "x")


def test_autocast_dtype_follows_the_hardware_unless_forced(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert runtime.autocast_dtype(cuda) == torch.bfloat16
    assert runtime.autocast_dtype(cuda, "fp32") is None
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.autocast_dtype(cpu) is None
    assert runtime.autocast_dtype(cpu, "bf16") == torch.bfloat16
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    assert runtime.autocast_dtype(cpu) == torch.bfloat16
    assert runtime.autocast_dtype(cpu, "fp32") is None
    assert (
        runtime.autocast_dtype(cpu, "cuda-bf16") is None and runtime.autocast_dtype(cuda, "cuda-bf16") == torch.bfloat16
    )
    assert runtime.autocast_dtype(torch.device("mps")) is None
    with pytest.raises(ValueError, match=r"precision must be one of \('auto', 'cuda-bf16', 'fp32', 'bf16'\)"):
        runtime.autocast_dtype(cpu, "fp16")


def test_model_device_reads_the_weights_device():
    assert runtime.model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    with pytest.raises(ValueError, match="no parameters"):
        runtime.model_device(torch.nn.ReLU())


def test_check_shares_names_the_parameter():
    assert runtime.check_shares("shares", [0.01, 1]) == (0.01, 1.0)
    with pytest.raises(ValueError, match="shares must name at least one share"):
        runtime.check_shares("shares", ())
    with pytest.raises(ValueError, match=r"finance_shares must be in \[0, 1\]; got 1.5"):
        runtime.check_shares("finance_shares", (0.1, 1.5))
    with pytest.raises(TypeError, match="shares must be a sequence of numbers"):
        runtime.check_shares("shares", 0.3)
