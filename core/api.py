"""The plugin API: the one litplug module a plugin imports (besides ``litplug.testing`` in its tests).

Everything here is stable within a minor version (a plugin declares ``litplug_requires = ">=0.2,<0.3"``);
everything else under ``litplug.*`` is the core's business and may change in any release. A test
(``tests/test_plugin_boundary.py``) fails when a plugin in this repository imports anything else.
Names are loaded on first use, so ``from litplug.api import hookimpl`` stays cheap (``litplug plugins``
imports every installed plugin).

Groups (``docs/hooks.md`` documents each):

- writing hooks: ``hookimpl``, ``StepContext``, ``context`` (a step context from a callback's
  ``pl_module``), ``OutputHead``, ``head_transform``, ``IGNORE_INDEX``
- errors (exit 2 unless stated): ``LitplugError``, ``ConfigError``, ``DataError``, ``PluginError``,
  ``RunFailure`` (exit 1)
- the run directory and export: ``RunDir``, ``export``, ``export_hf``, ``atomic_directory``,
  ``safetensors_files``, ``tensor_index``
- data: ``SourceSpec``, ``source_name``, ``source_specs``, ``read_examples``, ``has_answers``,
  ``build_rows``, ``collate``, ``to_model_batch``, ``prepare_split``, ``drawn_rows``
- synthetic tasks: ``Task``, ``Example``, ``TaskError``, ``get_task``, ``stable_int``
- models and tokenizers: ``ModelConfig``, ``build_model``, ``byte_tokenizer``, ``word_tokenizer``,
  ``load_tokenizer``
- evaluation: ``generate``, ``encode_prompts``, ``evaluate_all``, ``evaluate_source``, ``exact_match``,
  ``majority_vote``, ``pass_at_k``, ``mean_pass_at_k``
- configs and runs (for plugin verbs that train or score): ``load_config``, ``to_yaml``,
  ``plugin_manager``, ``setup_run``, ``train_run``, ``train_command``, ``build_module``
- tracking: ``tracking_uri``, ``experiment_id``
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from litplug import __version__, hookimpl

_EXPORTS: dict[str, str] = {
    # writing hooks
    "StepContext": "litplug.context", "context": "litplug.context",
    "OutputHead": "litplug.head", "head_transform": "litplug.head",
    # errors
    "LitplugError": "litplug.errors", "ConfigError": "litplug.errors", "DataError": "litplug.errors",
    "PluginError": "litplug.errors", "RunFailure": "litplug.errors",
    # run directory and export
    "RunDir": "litplug.rundir", "export": "litplug.export",
    "export_hf": "litplug.weights", "atomic_directory": "litplug.weights", "safetensors_files": "litplug.weights",
    "tensor_index": "litplug.weights",
    # data
    "SourceSpec": "litplug.data.sources", "source_name": "litplug.data.sources",
    "read_examples": "litplug.data.sources", "has_answers": "litplug.data.sources",
    "source_specs": "litplug.data.datamodule", "build_rows": "litplug.data.prepare",
    "prepare_split": "litplug.data.prepare", "collate": "litplug.data.batch", "to_model_batch": "litplug.data.batch",
    "drawn_rows": "litplug.data.mixture",
    # synthetic tasks
    "Task": "litplug.data.tasks", "Example": "litplug.data.tasks", "TaskError": "litplug.data.tasks",
    "get_task": "litplug.data.tasks", "stable_int": "litplug.data.tasks",
    # models and tokenizers
    "ModelConfig": "litplug.config", "build_model": "litplug.model", "byte_tokenizer": "litplug.model",
    "word_tokenizer": "litplug.model", "load_tokenizer": "litplug.model",
    # evaluation
    "generate": "litplug.generate", "encode_prompts": "litplug.generate",
    "evaluate_all": "litplug.evaluate", "evaluate_source": "litplug.evaluate",
    "exact_match": "litplug.metrics", "majority_vote": "litplug.metrics", "pass_at_k": "litplug.metrics",
    "mean_pass_at_k": "litplug.metrics",
    # configs and runs
    "load_config": "litplug.config", "to_yaml": "litplug.config",
    "setup_run": "litplug.run:setup", "train_run": "litplug.run:train", "train_command": "litplug.run",
    "build_module": "litplug.run", "plugin_manager": "litplug.plugins:manager_for",
    # tracking
    "tracking_uri": "litplug.tracking", "experiment_id": "litplug.tracking",
}

IGNORE_INDEX = -100  # the label that carries no loss (HF's convention)

__all__ = ["IGNORE_INDEX", "__version__", "hookimpl", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"litplug.api has no '{name}' (the plugin API: {', '.join(__all__)})")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs: the same names, eagerly
    from litplug.config import ModelConfig, load_config, to_yaml  # noqa: F401
    from litplug.context import StepContext, context  # noqa: F401
    from litplug.data.batch import collate, to_model_batch  # noqa: F401
    from litplug.data.datamodule import source_specs  # noqa: F401
    from litplug.data.mixture import drawn_rows  # noqa: F401
    from litplug.data.prepare import build_rows, prepare_split  # noqa: F401
    from litplug.data.sources import SourceSpec, has_answers, read_examples, source_name  # noqa: F401
    from litplug.data.tasks import Example, Task, TaskError, get_task, stable_int  # noqa: F401
    from litplug.errors import ConfigError, DataError, LitplugError, PluginError, RunFailure  # noqa: F401
    from litplug.evaluate import evaluate_all, evaluate_source  # noqa: F401
    from litplug.export import export  # noqa: F401
    from litplug.generate import encode_prompts, generate  # noqa: F401
    from litplug.head import OutputHead, head_transform  # noqa: F401
    from litplug.metrics import exact_match, majority_vote, mean_pass_at_k, pass_at_k  # noqa: F401
    from litplug.model import build_model, byte_tokenizer, load_tokenizer, word_tokenizer  # noqa: F401
    from litplug.plugins import manager_for as plugin_manager  # noqa: F401
    from litplug.run import build_module, train_command  # noqa: F401
    from litplug.run import setup as setup_run  # noqa: F401
    from litplug.run import train as train_run  # noqa: F401
    from litplug.rundir import RunDir  # noqa: F401
    from litplug.tracking import experiment_id, tracking_uri  # noqa: F401
    from litplug.weights import atomic_directory, export_hf, safetensors_files, tensor_index  # noqa: F401
