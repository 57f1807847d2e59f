"""litplug-liger on CPU: the fallback equals plain cross-entropy, holds less memory, and the plugin's
start-up errors and warnings say what is wrong."""

from __future__ import annotations

import functools
import logging
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from litplug_liger import backend
from litplug_liger.config import LigerConfig
from litplug_liger.patching import patch_model
from litplug_liger.plugin import LigerPlugin

from litplug.api import ConfigError, OutputHead, PluginError, context, hookimpl, load_config, plugin_manager
from litplug.testing import cli, step_context, tiny_config

TOL = {"rtol": 1e-5, "atol": 1e-5}
EXAMPLE = Path(__file__).parents[4] / "examples" / "kernels.yaml"
# The conformance settings are LigerPlugin.conformance (run by litplug's harness).


@functools.cache
def _core_hooks() -> Any:
    """The hooks of a run without plugins: the core's own lm_loss (plain cross-entropy of the logits)."""
    return plugin_manager(tiny_config()).hook


def core_lm_loss(hidden: torch.Tensor, head: OutputHead, labels: torch.Tensor) -> torch.Tensor:
    return _core_hooks().lm_loss(hidden=hidden, head=head, labels=labels, ctx=None)


def _loss_and_grads(loss_fn: Any, hidden: torch.Tensor, head: OutputHead, labels: torch.Tensor) -> list:
    hidden = hidden.detach().requires_grad_()
    head.projection.zero_grad()
    loss = loss_fn(hidden=hidden, head=head, labels=labels)
    loss.backward()
    grads = [hidden.grad] + [p.grad.clone() for p in head.projection.parameters()]
    return [loss.detach(), *grads]


@pytest.mark.parametrize("chunk_rows", [None, 1, 7, 10_000])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("transform", [(1.0, None), (0.125, None), (1.0, 3.0), (4.0, 5.0)],
                         ids=["plain", "scaled", "softcapped", "scaled+softcapped"])
def test_fallback_loss_and_grads_equal_plain_cross_entropy(chunk_rows: int | None, bias: bool,
                                                           transform: tuple[float, float | None]) -> None:
    torch.manual_seed(0)
    hidden = torch.randn(3, 17, 24)
    head = OutputHead(torch.nn.Linear(24, 1000, bias=bias), *transform)
    labels = torch.randint(0, 1000, (3, 17))
    labels[:, -3:] = -100  # padding
    labels[1, :5] = -100  # a prompt without loss
    plugin = LigerPlugin(LigerConfig(chunk_rows=chunk_rows))
    fused = _loss_and_grads(plugin.lm_loss, hidden, head, labels)
    plain = _loss_and_grads(core_lm_loss, hidden, head, labels)
    for got, want in zip(fused, plain, strict=True):
        torch.testing.assert_close(got, want, **TOL)


def test_fused_loss_off_leaves_the_loss_to_the_core() -> None:
    head = OutputHead(torch.nn.Linear(8, 11))
    plugin = LigerPlugin(LigerConfig(fused_linear_cross_entropy=False))
    assert plugin.lm_loss(hidden=torch.randn(1, 3, 8), head=head, labels=torch.zeros(1, 3, dtype=torch.long)) is None


def _profiled_peak_bytes(fn: Any) -> int:
    """Peak of live CPU tensor memory while ``fn`` runs, from the profiler's allocation events
    (tracemalloc does not see PyTorch's allocator)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for event in events:
        live += event.nbytes()
        peak = max(peak, live)
    return peak


def test_fallback_peak_memory_is_below_plain_at_32k_vocab() -> None:
    torch.manual_seed(0)
    vocab, hidden_size = 32_768, 64
    hidden, head = torch.randn(2, 256, hidden_size), OutputHead(torch.nn.Linear(hidden_size, vocab, bias=False))
    labels = torch.randint(0, vocab, (2, 256))
    logits_bytes = hidden.shape[0] * hidden.shape[1] * vocab * 4

    def step(loss_fn: Any) -> int:
        return _profiled_peak_bytes(lambda: _loss_and_grads(loss_fn, hidden, head, labels))

    plain = step(core_lm_loss)
    fused = step(LigerPlugin(LigerConfig()).lm_loss)  # default chunks: H = 64 rows
    assert plain >= logits_bytes  # the plain path holds at least the full fp32 logits
    assert fused < 0.5 * plain, f"fallback peak {fused / 2**20:.1f} MiB vs plain {plain / 2**20:.1f} MiB"
    assert fused < logits_bytes / 4  # never the [N, V] logits


class _AuxHead:
    """A throwaway plugin shaped like future-summary / multi-token heads: a loss from the hidden states."""

    def __init__(self, head: torch.nn.Module) -> None:
        self.head = head

    @hookimpl
    def extra_losses(self, ctx: Any, batch: dict, hidden: torch.Tensor) -> dict:
        return {"aux": self.head(hidden).pow(2).mean()}


def _model_step(plugins: dict[str, Any], model: Any, tokenizer: Any, batch: dict) -> dict[str, torch.Tensor]:
    ctx = step_context(model, tokenizer, "train", plugins=plugins)
    model.zero_grad()
    terms = ctx.losses({k: v.clone() for k, v in batch.items()}, "train")
    terms["loss"].backward()
    return {"lm": terms["lm"].detach(), "aux": terms["aux"].detach(),
            **{n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}}


def test_training_step_equals_plain_and_composes_with_hidden_state_heads(tiny_model: Any, tiny_tokenizer: Any,
                                                                         tiny_batch: dict) -> None:
    torch.manual_seed(1)
    aux = _AuxHead(torch.nn.Linear(tiny_model.config.hidden_size, 3))
    with_liger = _model_step({"liger": LigerPlugin(LigerConfig(chunk_rows=5)), "aux": aux}, tiny_model,
                             tiny_tokenizer, tiny_batch)
    plain = _model_step({"aux": aux}, tiny_model, tiny_tokenizer, tiny_batch)
    assert with_liger.keys() == plain.keys() and "model.embed_tokens.weight" in plain
    for name in plain:
        torch.testing.assert_close(with_liger[name], plain[name], **TOL, msg=name)


def test_cpu_run_logs_one_fallback_line(tiny_model: Any, caplog: pytest.LogCaptureFixture) -> None:
    plugin = LigerPlugin(LigerConfig())
    with caplog.at_level(logging.WARNING, logger="litplug.liger"):
        plugin.configure_model(model=tiny_model, config=load_config(None, ["trainer.accelerator=cpu"]))
    lines = [r.getMessage() for r in caplog.records if r.name == "litplug.liger"]
    assert len(lines) == 1 and "trainer.accelerator is 'cpu'" in lines[0] and "falls back" in lines[0]
    assert plugin.fused_loss is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_strict_without_cuda_exits_2_before_touching_the_run_dir(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    code = cli(["train", f"run.output_dir={tmp_path}", "plugins.liger={strict: true}", "tracking.enabled=false"])
    assert code == 2
    err = capsys.readouterr().err
    assert "plugins.liger.strict" in err and "CUDA is not available" in err
    assert not (tmp_path / "run").exists()


def test_strict_with_a_cpu_accelerator_is_a_config_error(tiny_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend.torch.cuda, "is_available", lambda: True)
    # import succeeds even where liger-kernel is not installed (CI installs no GPU extras)
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", types.ModuleType("liger_kernel.transformers"))
    plugin = LigerPlugin(LigerConfig(strict=True))
    cpu = load_config(None, ["trainer.accelerator=cpu"])
    plugin.check_config(config=cpu)  # the machine has CUDA (here: pretends to); the accelerator is checked next
    with pytest.raises(ConfigError, match="plugins.liger.strict.*trainer.accelerator is 'cpu'"):
        plugin.configure_model(model=tiny_model, config=cpu)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_strict_without_cuda_is_refused_by_litplug_config(capsys: pytest.CaptureFixture) -> None:
    assert cli(["config", "plugins.liger={strict: true}"]) == 2
    err = capsys.readouterr().err
    assert "plugins.liger.strict" in err and "CUDA is not available" in err


def test_bad_chunk_rows_is_a_config_error() -> None:
    code = cli(["config", "plugins.liger={chunk_rows: 0}"])
    assert code == 2


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def apply_liger_kernel_to_toy(self, rope: bool = True, cross_entropy: bool = False,
                                  fused_linear_cross_entropy: bool = True, rms_norm: bool = True,
                                  model: Any = None) -> None:
        self.calls.append({"rope": rope, "cross_entropy": cross_entropy, "rms_norm": rms_norm,
                           "fused_linear_cross_entropy": fused_linear_cross_entropy, "model": model})


def test_patching_calls_liger_apply_function_with_the_model(tiny_model: Any,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    recorder = _Recorder()
    with caplog.at_level(logging.WARNING, logger="litplug.liger"):
        patched = patch_model(tiny_model, {"llama": recorder.apply_liger_kernel_to_toy},
                              {"rms_norm": True, "rope": False, "swiglu": True})
    assert patched
    assert recorder.calls == [{"rope": False, "cross_entropy": False, "rms_norm": True,
                               "fused_linear_cross_entropy": False, "model": tiny_model}]
    assert any("swiglu" in r.getMessage() for r in caplog.records)  # this apply function has no swiglu option


def test_unsupported_architecture_warns_by_name_and_leaves_model_alone(tiny_model: Any,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    recorder = _Recorder()
    tiny_model.config.model_type = "gpt_neox"
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="litplug.liger"):
        patched = patch_model(tiny_model, {"llama": recorder.apply_liger_kernel_to_toy},
                              {"rms_norm": True, "rope": True, "swiglu": True})
    assert not patched and not recorder.calls
    (message,) = [r.getMessage() for r in caplog.records if r.name == "litplug.liger"]
    assert "'gpt_neox'" in message and "llama" in message and "continues" in message
    assert all(torch.equal(v, tiny_model.state_dict()[k]) for k, v in before.items())


OTHER_LOSS = """
from litplug.api import hookimpl

class Plugin:  # a second plugin claiming the exclusive lm_loss hook
    @hookimpl
    def lm_loss(self, hidden, head, labels):
        return hidden.sum()
"""
AUX_HEAD = """
from litplug.api import hookimpl

class Plugin:  # a loss from the hidden states, not the LM loss
    @hookimpl
    def extra_losses(self, hidden):
        return {"aux": hidden.pow(2).mean()}
"""


def _install_plugin(site: Path, name: str, source: str) -> str:
    """A plugin module plus a ``*.dist-info`` with its entry point, found as a pip-installed one would be."""
    module = f"liger_test_{name}"
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"litplug_{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: litplug-{name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[litplug.plugins]\n{name} = {module}:Plugin\n")
    return module


def test_liger_and_another_lm_loss_plugin_is_a_startup_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("LITPLUG_PLUGINS", raising=False)
    modules = [_install_plugin(tmp_path, "other_loss", OTHER_LOSS), _install_plugin(tmp_path, "aux_head", AUX_HEAD)]
    try:
        with pytest.raises(PluginError, match="'liger' and 'other_loss' both implement the exclusive hook 'lm_loss'"):
            plugin_manager(load_config(None, ["plugins.liger={}", "plugins.other_loss={}"]))
        plugin_manager(load_config(None, ["plugins.liger={}", "plugins.aux_head={}"]))  # a non-loss plugin is fine
    finally:
        for module in modules:
            sys.modules.pop(module, None)


def test_example_config_runs_end_to_end_on_cpu(litplug_run: Any) -> None:
    pytest.importorskip("litplug_xformers")
    run = litplug_run(config_path=str(EXAMPLE), overrides=["data.seq_len=32"])  # byte tokens: longer rows
    assert run.results["global_step"] == 4
    assert set(context(run.module).config.plugins) == {"liger", "xformers"}
    assert torch.isfinite(torch.tensor(run.results["metrics"]["train/loss"]))
