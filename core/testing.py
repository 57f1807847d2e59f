"""The plugin test kit, loaded into pytest automatically (entry point ``pytest11``).

Fixtures: ``litplug_run`` (train N steps in-process with given plugins), ``tiny_model``,
``tiny_tokenizer``, ``tiny_batch``. The conformance suite: subclass :class:`PluginConformance`,
set ``plugin`` (its entry-point name) and ``config`` (its options), and pytest runs the checks every
plugin must pass: discovered, config validated, trains, exports a plain HF model, resumes bit-exactly.

Heavy imports stay inside functions: pytest imports this module in every session.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# A run small enough for a unit test: ~40k parameters, 2-digit addition, 4 steps, no tracking.
TINY_OVERRIDES = [
    "model.hidden_size=32", "model.num_hidden_layers=2", "model.num_attention_heads=2",
    "model.intermediate_size=64", "model.max_position_embeddings=64",
    "data.sources=[{task: arithmetic, params: {digits: 2}, num_train: 256, num_validation: 16, num_test: 16}]",
    "data.seq_len=16", "data.batch_size=8",
    "trainer.max_steps=4", "trainer.checkpoint_every_n_steps=2", "trainer.log_every_n_steps=1",
    "trainer.limit_val_batches=1", "tracking.enabled=false", "eval.num_examples=4",
]


def plugin_overrides(plugins: dict[str, dict[str, Any]] | None) -> list[str]:
    """``{"fsp": {"tau": 4}}`` as overrides (an empty dict enables a plugin with its defaults)."""
    import json

    return [f"plugins.{name}={json.dumps(options or {})}" for name, options in (plugins or {}).items()]


def run_training(output_dir: Path, plugins: dict[str, dict[str, Any]] | None = None,
                 overrides: list[str] | tuple[str, ...] = (), config_path: str | None = None,
                 cache_dir: Path | None = None, name: str = "run") -> Any:
    """Set up and train a tiny run in this process; returns the finished :class:`litplug.run.Run`
    (``run.results``, ``run.run_dir``, ``run.export_dir``, and ``run.module`` the trained module)."""
    from litplug import run as run_mod

    args = [*TINY_OVERRIDES, f"run.output_dir={output_dir}", f"run.name={name}", *plugin_overrides(plugins)]
    if cache_dir is not None:
        args.append(f"data.cache_dir={cache_dir}")
    run = run_mod.setup(config_path, [*args, *overrides])
    run_mod.train(run)
    return run


@pytest.fixture(scope="session")
def litplug_data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the session, so each distinct data config is tokenised once."""
    return tmp_path_factory.mktemp("litplug-data-cache")


@pytest.fixture
def litplug_run(tmp_path: Path, litplug_data_cache: Path) -> Callable[..., Any]:
    """``litplug_run(plugins={...}, overrides=[...], name="run")`` trains a tiny run under tmp_path."""

    def _run(plugins: dict[str, dict[str, Any]] | None = None, overrides: list[str] | tuple[str, ...] = (),
             name: str = "run", config_path: str | None = None) -> Any:
        return run_training(tmp_path, plugins, overrides, config_path, litplug_data_cache, name)

    return _run


@pytest.fixture
def tiny_tokenizer() -> Any:
    from litplug.data.tasks import get_task
    from litplug.model import word_tokenizer

    return word_tokenizer(get_task("arithmetic", {"digits": 2}).vocab())


@pytest.fixture
def tiny_model(tiny_tokenizer: Any) -> Any:
    import torch
    from omegaconf import OmegaConf

    from litplug.config import ModelConfig
    from litplug.model import build_model

    torch.manual_seed(0)
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"hidden_size": 32, "num_attention_heads": 2,
                                                              "intermediate_size": 64})
    return build_model(cfg, tiny_tokenizer)


@pytest.fixture
def tiny_batch(tiny_tokenizer: Any) -> dict[str, Any]:
    """A batch of 8 arithmetic examples in the layout every hook sees."""
    import torch

    from litplug.data.batch import to_model_batch
    from litplug.data.prepare import build_rows
    from litplug.data.tasks import get_task

    examples = get_task("arithmetic", {"digits": 2}).examples("train", 8, 0)
    rows = torch.from_numpy(build_rows(tiny_tokenizer, examples, 16, "arithmetic"))
    return to_model_batch({"tokens": rows[:, :-2], "n_prompt": rows[:, -2], "length": rows[:, -1]})


def step_context(model: Any, tokenizer: Any, stage: str = "train", batch: dict[str, Any] | None = None,
                 aux: dict[str, Any] | None = None, plugins: dict[str, Any] | None = None,
                 overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """A :class:`litplug.api.StepContext` outside a trainer, to unit-test a step hook: ``plugins`` maps
    names to plugin instances (registered with the core, as in a run); ``overrides`` change the tiny
    config. ``ctx.log`` is a no-op here; set ``ctx.hidden`` to use ``ctx.logits``."""
    from litplug.config import load_config
    from litplug.context import StepContext
    from litplug.module import LitplugModule
    from litplug.plugins import new_manager, register_all

    cfg = load_config(None, [*TINY_OVERRIDES, *overrides])
    pm = new_manager()
    register_all(pm, dict(plugins or {}))
    return StepContext(LitplugModule(cfg, model, tokenizer, pm, aux), stage, batch)


def cli(argv: list[str]) -> int:
    """Run a ``litplug`` command line in this process; returns its exit code (for plugin verb tests)."""
    from litplug.cli import main

    return main(list(argv))


def tiny_config(overrides: list[str] | tuple[str, ...] = (), plugins: dict[str, dict[str, Any]] | None = None) -> Any:
    """The tiny run's resolved config (``TINY_OVERRIDES``), with the plugins and overrides given."""
    from litplug.config import load_config

    return load_config(None, [*TINY_OVERRIDES, *plugin_overrides(plugins), *overrides])


def state_equal(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of tensors that differ (bitwise) between two state dicts, plus missing keys."""
    import torch

    diff = sorted(set(a) ^ set(b))
    return diff + [k for k in sorted(set(a) & set(b)) if not torch.equal(a[k], b[k])]


class PluginConformance:
    """Subclass in your plugin's tests with ``plugin = "<entry-point name>"`` and ``config = {...}``.

    ``overrides`` adds config overrides the plugin needs (e.g. a data source of its own).
    """

    plugin: str = ""
    config: dict[str, Any] = {}
    overrides: tuple[str, ...] = ()

    def _plugins(self) -> dict[str, dict[str, Any]]:
        return {self.plugin: dict(self.config)} if self.plugin else {}

    def test_discovered_through_entry_point(self) -> None:
        from litplug.plugins import list_plugins

        records = {r.name: r for r in list_plugins()}
        assert self.plugin in records, f"entry point '{self.plugin}' not found in group litplug.plugins"
        record = records[self.plugin]
        assert record.status == "ok", record.reason
        assert record.hooks, "the plugin implements no hook"
        assert record.distribution and record.version

    def test_config_validates_and_rejects_unknown_keys(self) -> None:
        from litplug.config import load_config
        from litplug.errors import ConfigError
        from litplug.plugins import load_plugins

        cfg = load_config(None, [*plugin_overrides(self._plugins()), *self.overrides])
        load_plugins(cfg)
        assert self.plugin in cfg.plugins
        bad = load_config(None, [*plugin_overrides(self._plugins()), f"plugins.{self.plugin}.no_such_option=1",
                                 *self.overrides])
        with pytest.raises(ConfigError, match=f"plugins.{self.plugin}.no_such_option"):
            load_plugins(bad)

    def test_trains_exports_and_reloads(self, litplug_run: Callable[..., Any]) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        run = litplug_run(self._plugins(), self.overrides)
        metrics = run.results["metrics"]
        assert run.results["global_step"] == 4
        assert all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k.startswith(("train/", "val/")))
        reloaded = AutoModelForCausalLM.from_pretrained(run.export_dir, local_files_only=True).eval()
        trained = run.module.model.eval()
        ids = torch.randint(0, trained.config.vocab_size, (2, 12))
        with torch.no_grad():
            torch.testing.assert_close(reloaded(ids).logits, trained(ids).logits, rtol=0, atol=0)

    def test_resume_is_bit_exact(self, litplug_run: Callable[..., Any]) -> None:
        keep = ["trainer.keep_checkpoints=true", *self.overrides]
        full = litplug_run(self._plugins(), keep, name="full")
        resumed_dir = full.run_dir.parent / "resumed"
        (resumed_dir / "checkpoints").mkdir(parents=True)
        shutil.copy(full.run_dir / "checkpoints" / "step=2.ckpt", resumed_dir / "checkpoints" / "last.ckpt")
        resumed = litplug_run(self._plugins(), keep, name="resumed")
        diff = state_equal(full.module.state_dict(), resumed.module.state_dict())
        assert not diff, f"resumed run differs from the uninterrupted run in {diff[:5]}"
        assert resumed.results["metrics"]["train/loss"] == full.results["metrics"]["train/loss"]
