"""litplug-xformers on CPU: the registered attention equals eager attention, the xformers layout code
is right (checked against xformers' documented reference computation), and start-up errors are clear."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from litplug_xformers import attention
from litplug_xformers.config import XformersConfig
from litplug_xformers.plugin import XformersPlugin
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.models.llama.modeling_llama import eager_attention_forward

from litplug.api import ConfigError, load_config
from litplug.testing import cli

TOL = {"rtol": 1e-5, "atol": 1e-5}
# The conformance settings are XformersPlugin.conformance (run by litplug's harness).


@pytest.fixture
def sdpa_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts calls of the SDPA fallback inside the registered function, so a test cannot pass by
    silently running some other attention implementation."""
    calls: list[int] = []
    real = attention.sdpa_attention_forward

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(attention, "sdpa_attention_forward", counting)
    return calls


def _gqa_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=61, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
    return LlamaForCausalLM(config).eval()


def _plugin_model(model: LlamaForCausalLM) -> None:
    """The plugin's configure_model on a CPU run; a forward pass then goes through the registered function
    (tests count its SDPA fallback calls with ``sdpa_calls``)."""
    XformersPlugin(XformersConfig()).configure_model(model=model, config=load_config(None, ["trainer.accelerator=cpu"]))


@pytest.mark.parametrize("padded", [False, True])
def test_fallback_equals_eager_attention(padded: bool, sdpa_calls: list[int]) -> None:
    model = _gqa_llama()
    model.set_attn_implementation("eager")
    ids = torch.randint(0, 61, (3, 12))
    mask = torch.ones_like(ids)
    if padded:
        mask[1, :4] = 0  # left padding
    kwargs = {"attention_mask": mask} if padded else {}
    eager_logits = model(ids, **kwargs).logits
    eager_logits.sum().backward()
    eager_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    _plugin_model(model)
    logits = model(ids, **kwargs).logits
    logits.sum().backward()
    assert len(sdpa_calls) == model.config.num_hidden_layers
    real = mask.bool()  # padded query rows are meaningless in both implementations
    torch.testing.assert_close(logits[real], eager_logits[real], **TOL)
    if not padded:
        for name, param in model.named_parameters():
            torch.testing.assert_close(param.grad, eager_grads[name], **TOL, msg=name)


def _reference_memory_efficient_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                          attn_bias: Any = None, p: float = 0.0, scale: float | None = None) -> Any:
    """xformers' documented 'equivalent pytorch code' for [B, M, H, K] inputs."""
    assert query.dim() == 4 and query.shape[:3] == (key.shape[0], query.shape[1], key.shape[2])
    scale = scale if scale is not None else query.shape[-1] ** -0.5
    q, k, v = (t.transpose(1, 2) for t in (query, key, value))
    scores = (q * scale) @ k.transpose(-2, -1)
    if attn_bias is not None:
        assert isinstance(attn_bias, _Causal)
        m, n = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(m, n, dtype=torch.bool).triu(1), float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).contiguous()


class _Causal:
    pass


FAKE_OPS = SimpleNamespace(memory_efficient_attention=_reference_memory_efficient_attention,
                           LowerTriangularMask=_Causal)


@pytest.mark.parametrize(("heads", "kv_heads", "q_len"), [(4, 4, 9), (6, 2, 9), (4, 1, 1)])
def test_xformers_layout_and_gqa_match_eager(heads: int, kv_heads: int, q_len: int) -> None:
    torch.manual_seed(0)
    kv_len, dim = (9 if q_len > 1 else 5), 8
    query = torch.randn(2, heads, q_len, dim)
    key, value = torch.randn(2, kv_heads, kv_len, dim), torch.randn(2, kv_heads, kv_len, dim)
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, training=False, is_causal=True)
    causal = q_len > 1
    mask = torch.full((q_len, kv_len), float("-inf")).triu(1)[None, None] if causal else None
    want, _ = eager_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    got = attention.memory_efficient_forward(FAKE_OPS, query, key, value, causal, 0.0, dim**-0.5)
    assert got.shape == (2, q_len, heads, dim)  # [B, M, H, K], what transformers reshapes to hidden
    torch.testing.assert_close(got, want, **TOL)


def test_autocast_gives_the_kernel_one_dtype() -> None:
    seen: list[set] = []

    def record(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        seen.append({query.dtype, key.dtype, value.dtype})
        return query

    ops = SimpleNamespace(memory_efficient_attention=record, LowerTriangularMask=_Causal)
    query = torch.randn(1, 2, 5, 8)  # fp32 after RoPE (cos/sin follow the fp32 residual stream)
    value = query.to(torch.bfloat16)  # straight out of an autocast linear
    with torch.autocast("cpu", dtype=torch.bfloat16):
        attention.memory_efficient_forward(ops, query, query, value, True, 0.0, None)
    attention.memory_efficient_forward(ops, query, query, query, True, 0.0, None)
    assert seen == [{torch.bfloat16}, {torch.float32}]


def test_cpu_tensors_never_reach_the_kernel(sdpa_calls: list[int]) -> None:
    exploding = SimpleNamespace(memory_efficient_attention=None, LowerTriangularMask=None)  # fails if called
    query = torch.randn(1, 2, 5, 8)
    module = SimpleNamespace(num_key_value_groups=1, is_causal=True)
    out, _ = attention.xformers_attention_forward(exploding, module, query, query, query, None, scaling=0.3)
    assert out.shape == (1, 5, 2, 8) and sdpa_calls == [1]


def test_cpu_run_logs_one_fallback_line(caplog: pytest.LogCaptureFixture, sdpa_calls: list[int]) -> None:
    model = _gqa_llama()
    with caplog.at_level(logging.WARNING, logger="litplug.xformers"):
        _plugin_model(model)
    lines = [r.getMessage() for r in caplog.records if r.name == "litplug.xformers"]
    assert len(lines) == 1 and "trainer.accelerator is 'cpu'" in lines[0] and "SDPA" in lines[0]
    model(torch.randint(0, 61, (1, 5)))
    assert len(sdpa_calls) == model.config.num_hidden_layers  # the attention is the plugin's function


def test_strict_is_checked_at_start_up_by_check_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from litplug_xformers import backend

    monkeypatch.setattr(backend, "cuda_problem", lambda accelerator="auto": "no kernel on this test machine")
    config = load_config(None, [])
    with pytest.raises(ConfigError, match="plugins.xformers.strict.*no kernel on this test machine"):
        XformersPlugin(XformersConfig(strict=True)).check_config(config=config)
    XformersPlugin(XformersConfig()).check_config(config=config)  # not strict: the SDPA fallback is fine


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_strict_without_cuda_is_refused_by_litplug_config(capsys: pytest.CaptureFixture) -> None:
    assert cli(["config", "plugins.xformers={strict: true}"]) == 2
    err = capsys.readouterr().err
    assert "plugins.xformers.strict" in err and "CUDA is not available" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_strict_without_cuda_exits_2_before_touching_the_run_dir(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    code = cli(["train", f"run.output_dir={tmp_path}", "plugins.xformers={strict: true}", "tracking.enabled=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert "plugins.xformers.strict" in err and "CUDA is not available" in err
    assert not (tmp_path / "run").exists()


def test_training_run_uses_the_registered_attention(litplug_run: Any, sdpa_calls: list[int]) -> None:
    run = litplug_run({"xformers": {}}, ["trainer.max_steps=1", "trainer.checkpoint_every_n_steps=1"])
    assert sdpa_calls  # the backbone's attention went through the plugin's function
    assert "xformers" not in (run.export_dir / "config.json").read_text()  # the export is plain HF


@pytest.mark.parametrize(("architecture", "extra", "feature"), [
    ("gemma2", {}, "attention soft-capping"),
    ("mistral", {"sliding_window": 8}, "sliding-window attention (sliding_window=8 < data.seq_len=16)"),
])
def test_unsupported_attention_is_refused_at_startup_naming_the_feature(
        architecture: str, extra: dict, feature: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from litplug.testing import TINY_OVERRIDES

    code = cli(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"model.architecture={architecture}",
                 f"model.extra={json.dumps(extra)}", "plugins.xformers={}"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "plugins.xformers" in err and feature in err
    assert not (tmp_path / "run").exists()


def test_a_sliding_window_longer_than_the_sequences_is_plain_causal_attention() -> None:
    from litplug_xformers.plugin import unsupported_feature

    model = _gqa_llama()
    model.config.sliding_window = 64
    assert unsupported_feature(model, seq_len=16) is None
