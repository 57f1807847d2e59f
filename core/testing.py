"""The plugin test kit, loaded into pytest automatically (entry point ``pytest11``).

Fixtures: ``litplug_run`` (train N steps in-process with given plugins), ``tiny_model``,
``tiny_tokenizer``, ``tiny_batch``; helpers: ``step_context`` (a StepContext to unit-test a step hook),
``tiny_config``, ``cli``. The conformance harness: the checks every plugin must pass (discovered,
implements a hook, config validated, trains, exports a plain HF model, mid-run and final exports agree,
generation hooks, every implemented hook exercised, resumes bit-exactly). litplug runs it over every
installed plugin (tests/test_conformance.py); a plugin's own tests subclass :class:`PluginConformance`.

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


# ---------------------------------------------------------------------------------------------------
# The conformance harness: the checks every plugin passes, run over every installed plugin by
# tests/test_conformance.py (and by a third party's own tests through PluginConformance).
# ---------------------------------------------------------------------------------------------------

# Hooks a run, an evaluation and the CLI call; a plugin implementing one the harness never saw called fails.
VERB_HOOKS = ("cli_commands", "merge_methods")


def conformance_settings(obj: Any) -> list[dict[str, Any]]:
    """A plugin's declared ``conformance`` settings (a dict, or a sequence of dicts with ``config`` and
    ``overrides``), or one default setting when it declares none."""
    declared = getattr(obj, "conformance", None) or [{}]
    if isinstance(declared, dict):
        declared = [declared]
    return [{"config": dict(d.get("config", {})), "overrides": tuple(d.get("overrides", ()))} for d in declared]


def conformance_cases() -> list[tuple[str, int, dict[str, Any]]]:
    """``(plugin, index, settings)`` for every installed plugin (a broken one gets a case, to fail)."""
    from litplug.plugins import list_plugins

    cases = []
    for record in list_plugins():
        for i, settings in enumerate(conformance_settings(record.obj) if record.obj is not None else [{}]):
            cases.append((record.name, i, {"config": {}, "overrides": (), **settings}))
    return cases


class Monitored:
    """Which hooks of which plugin were called, recorded through pluggy's call monitoring."""

    def __init__(self) -> None:
        self.calls: dict[str, set[str]] = {}

    def attach(self, pm: Any) -> None:
        def before(hook_name: str, impls: list[Any], kwargs: dict[str, Any]) -> None:
            for impl in impls:
                self.calls.setdefault(impl.plugin_name, set()).add(hook_name)

        pm.add_hookcall_monitoring(before, lambda *args: None)

    def of(self, plugin: str) -> set[str]:
        return self.calls.get(plugin, set())


def conformance_run(plugin: str, settings: dict[str, Any], output_dir: Path, cache_dir: Path | None,
                    name: str = "run", extra: tuple[str, ...] = ()) -> tuple[Any, Monitored]:
    """Train the plugin's tiny run (checkpoints kept), with every hook call recorded."""
    from litplug import plugins as plugins_mod
    from litplug import run as run_mod

    monitored = Monitored()
    args = [*TINY_OVERRIDES, f"run.output_dir={output_dir}", f"run.name={name}", "trainer.keep_checkpoints=true",
            *plugin_overrides({plugin: settings["config"]} if plugin else None), *settings["overrides"], *extra]
    if cache_dir is not None:
        args.append(f"data.cache_dir={cache_dir}")
    plugins_mod.MANAGER_OBSERVERS.append(monitored.attach)  # from the first hook call of the run
    try:
        run = run_mod.setup(None, args)
        run_mod.train(run)
    finally:
        plugins_mod.MANAGER_OBSERVERS.remove(monitored.attach)
    return run, monitored


def check_discovered(plugin: str) -> Any:
    """Found through its entry point, importable, fits the hook contract, implements a hook."""
    from litplug.plugins import list_plugins

    records = {r.name: r for r in list_plugins()}
    assert plugin in records, f"entry point '{plugin}' not found in group litplug.plugins"
    record = records[plugin]
    assert record.status == "ok", f"plugin '{plugin}' is listed broken: {record.reason}"
    assert record.distribution and record.version, "the plugin is not an installed distribution"
    return record


def check_config(plugin: str, settings: dict[str, Any]) -> None:
    """Its section validates (and ``check_config`` passes) with its settings; an unknown key is refused by name."""
    from litplug.config import load_config
    from litplug.errors import ConfigError
    from litplug.plugins import load_plugins

    plugins = {plugin: settings["config"]}
    cfg = load_config(None, [*TINY_OVERRIDES, *plugin_overrides(plugins), *settings["overrides"]])
    load_plugins(cfg)
    assert plugin in cfg.plugins
    bad = load_config(None, [*TINY_OVERRIDES, *plugin_overrides(plugins), f"plugins.{plugin}.no_such_option=1",
                             *settings["overrides"]])
    with pytest.raises(ConfigError, match=f"plugins.{plugin}.no_such_option"):
        load_plugins(bad)


def check_trained(run: Any) -> None:
    """Ran the configured number of steps with finite metrics; the export reloads without litplug and
    gives the trained model's logits exactly."""
    import torch
    from transformers import AutoModelForCausalLM

    metrics = run.results["metrics"]
    assert run.results["global_step"] == run.cfg.trainer.max_steps
    bad = {k: v for k, v in metrics.items() if k.startswith(("train/", "val/")) and not torch.isfinite(torch.tensor(v))}
    assert not bad, f"non-finite metrics {bad}"
    reloaded = AutoModelForCausalLM.from_pretrained(run.export_dir, local_files_only=True).eval()
    trained = run.module.model.eval()
    ids = torch.randint(0, trained.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, trained(ids).logits, rtol=0, atol=0)


def check_export(run: Any, target: Path) -> None:
    """A mid-run export (``StepContext.export``, what WiSE-FT's keeper and SPT's snapshots use) writes the
    same model as the end of training, and leaves the live model untouched."""
    import json

    import torch
    from safetensors.torch import load_file

    from litplug.context import StepContext

    model = run.module.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config_before = model.config.to_dict()
    StepContext(run.module, "final").export(target)
    assert not state_equal(before, model.state_dict()), "exporting changed the live model's weights"
    assert model.config.to_dict() == config_before, "exporting changed the live model's config"
    end = json.loads((run.export_dir / "config.json").read_text())
    mid = json.loads((Path(target) / "config.json").read_text())
    assert mid == end, f"the mid-run export's config differs: {set(mid.items()) ^ set(end.items())}"
    a, b = load_file(run.export_dir / "model.safetensors"), load_file(Path(target) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the two exports' weights differ"


def check_generation(run: Any) -> None:
    """Generation with the plugin's hooks (prompt changes, logits processors) gives text, and each logits
    processor keeps the scores' shape."""
    import torch

    from litplug.generate import encode_prompts, generate

    tokenizer, model = run.tokenizer, run.module.model
    prompts = ["1 + 2 ="]
    ids = encode_prompts(tokenizer, prompts, run.pm)
    vocab = len(tokenizer)
    assert all(isinstance(i, int) and 0 <= i < vocab for row in ids for i in row), "prompt ids outside the vocab"
    scores = torch.zeros(1, model.config.vocab_size)
    for group in run.pm.hook.logits_processors(tokenizer=tokenizer):
        for processor in group or []:
            assert processor(torch.tensor(ids), scores.clone()).shape == scores.shape
    out = generate(model.eval(), tokenizer, prompts, run.pm, max_new_tokens=3, seed=0)
    assert len(out) == 1 and all(isinstance(c, str) for c in out[0])


def check_verbs(plugin: str, monitored: Monitored) -> None:
    """Its declared verbs build their parsers; its merge methods are callables."""
    import argparse

    from litplug.plugins import inspect_entry_point, installed_entry_points, verb_manager, verb_providers

    record = inspect_entry_point(plugin, installed_entry_points()[plugin])
    verbs = [v for v, names in verb_providers().items() if plugin in names]
    if "cli_commands" in record.hooks:
        assert verbs, "implements cli_commands but declares no verb under the entry-point group litplug.verbs"
    for verb in verbs:
        pm = verb_manager(verb)
        monitored.attach(pm)
        sub = argparse.ArgumentParser(prog="litplug").add_subparsers()
        pm.hook.cli_commands(subparsers=sub)
        assert verb in sub.choices, f"declares the verb '{verb}' but its cli_commands adds {sorted(sub.choices)}"
    if "merge_methods" in record.hooks:
        from litplug.plugins import _default_instance, new_manager, register_all

        pm = new_manager()
        register_all(pm, {plugin: _default_instance(record.obj)})
        monitored.attach(pm)
        for methods in pm.hook.merge_methods():
            assert all(callable(fn) for fn in (methods or {}).values())


def check_hooks_exercised(plugin: str, monitored: Monitored) -> None:
    """Every hook the plugin implements was called by the run, the export, the evaluation or the CLI."""
    from litplug.plugins import implemented_hooks, installed_entry_points

    obj = installed_entry_points()[plugin][0].load()
    missed = sorted(set(implemented_hooks(obj)) - monitored.of(plugin))
    assert not missed, (f"the harness never saw plugin '{plugin}' called at {missed}: give it `conformance` "
                        "settings under which those hooks run")


def check_resume(full: Any, settings: dict[str, Any], plugin: str, output_dir: Path, cache_dir: Path | None) -> None:
    """Resumed from its first kept checkpoint, the run ends bit-identical to the uninterrupted one."""
    from litplug.rundir import RunDir

    step = int(full.cfg.trainer.checkpoint_every_n_steps)
    resumed_dir = RunDir(Path(output_dir) / "resumed")
    resumed_dir.checkpoints.mkdir(parents=True)
    shutil.copy(full.dir.checkpoint(step), resumed_dir.last_checkpoint)
    resumed, _ = conformance_run(plugin, settings, output_dir, cache_dir, name="resumed")
    diff = state_equal(full.module.state_dict(), resumed.module.state_dict())
    assert not diff, f"resumed run differs from the uninterrupted run in {diff[:5]}"
    assert resumed.results["metrics"]["train/loss"] == full.results["metrics"]["train/loss"]


class PluginConformance:
    """The harness for one plugin, as a test class: subclass it with ``plugin = "<entry-point name>"`` and
    (optionally) ``config`` / ``overrides``; without them the plugin's own ``conformance`` settings are used.
    litplug's own tests run the same checks over every installed plugin (tests/test_conformance.py).
    """

    plugin: str = ""
    config: dict[str, Any] | None = None
    overrides: tuple[str, ...] = ()

    def settings(self) -> dict[str, Any]:
        if self.config is not None or self.overrides or not self.plugin:
            return {"config": dict(self.config or {}), "overrides": tuple(self.overrides)}
        from litplug.plugins import installed_entry_points

        return conformance_settings(installed_entry_points()[self.plugin][0].load())[0]

    @pytest.fixture(scope="class")
    def trained(self, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Monitored, Path]:
        out = tmp_path_factory.mktemp(f"conformance-{self.plugin}")
        run, monitored = conformance_run(self.plugin, self.settings(), out, None)
        return run, monitored, out

    def test_discovered_through_entry_point(self) -> None:
        check_discovered(self.plugin)

    def test_config_validates_and_rejects_unknown_keys(self) -> None:
        check_config(self.plugin, self.settings())

    def test_trains_exports_and_reloads(self, trained: tuple[Any, Monitored, Path]) -> None:
        check_trained(trained[0])

    def test_mid_run_export_equals_final_export(self, trained: tuple[Any, Monitored, Path], tmp_path: Path) -> None:
        check_export(trained[0], tmp_path / "export")

    def test_generation_hooks(self, trained: tuple[Any, Monitored, Path]) -> None:
        check_generation(trained[0])

    def test_every_hook_is_exercised(self, trained: tuple[Any, Monitored, Path]) -> None:
        check_verbs(self.plugin, trained[1])
        check_hooks_exercised(self.plugin, trained[1])

    def test_resume_is_bit_exact(self, trained: tuple[Any, Monitored, Path]) -> None:
        run, _, out = trained
        check_resume(run, self.settings(), self.plugin, out, None)
