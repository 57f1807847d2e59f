"""The plugin contract: every hook litplug calls, in the order a run calls them.

A plugin is a class (or module) exposed under the entry-point group ``litplug.plugins``. Its hook
implementations are methods marked with ``@hookimpl`` (from :mod:`litplug.api`, the one module a plugin
imports) whose names match the specs below;
an implementation may accept any subset of a hook's keyword arguments. ``docs/hooks.md`` has a
section with an example for every hook (a test keeps the two in step).

Plugin classes may also declare, as class attributes:

- ``config_class``: a dataclass; the plugin's section ``plugins.<name>`` is validated against it and
  the validated object is passed to ``__init__``.
- ``litplug_requires``: a PEP 440 specifier (e.g. ``">=0.1,<0.2"``) of the litplug versions it
  supports; a mismatch stops a run at start-up.
- ``run_after`` / ``run_before``: names of plugins this one must follow / precede in the config's
  plugin order; checked at start-up.
- ``conformance``: ``{"config": {...}, "overrides": [...]}``, the settings the conformance harness
  (``tests/test_conformance.py``, ``litplug.testing``) trains the plugin with; defaults when absent.

Unless stated, hooks are called on every active plugin in the config's order and their results
are collected in a list. The core's own defaults (plain cross-entropy, AdamW) are registered as the
plugin ``core``, which always runs last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

from litplug import PROJECT

if TYPE_CHECKING:
    import torch
    from lightning.pytorch import Callback
    from omegaconf import DictConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from litplug.context import StepContext
    from litplug.data.sources import SourceSpec
    from litplug.data.tasks import Task
    from litplug.head import OutputHead

hookspec = pluggy.HookspecMarker(PROJECT)

# ---------------------------------------------------------------------------------------------
# setup: called once, before the optimizer exists, in this order
# ---------------------------------------------------------------------------------------------


@hookspec
def check_config(config: DictConfig) -> None:
    """Refuse a config this plugin cannot run, before anything is built or written.

    Raise :class:`litplug.api.ConfigError` naming the key and the fix; the run (and ``litplug config``,
    which calls this hook too) exits 2 with the message. Called once the plugins' own sections are
    validated, on every active plugin. Checks that need the model or the data stay in the hook that
    has them (e.g. ``configure_model``), which also runs before the run directory exists.
    """


@hookspec
def synthetic_tasks() -> list[type[Task]] | None:
    """Synthetic tasks (subclasses of :class:`litplug.api.Task`) this plugin provides, by their ``name``.

    Called on the active plugins at start-up. A task is also usable by runs that do not enable the
    plugin: declare each task's name in the entry-point group ``litplug.tasks``
    (``<task name> = "<the plugin's litplug.plugins object>"``); the core then imports that plugin
    alone when a config names the task.
    """


@hookspec
def configure_tokenizer(tokenizer: PreTrainedTokenizerBase, config: DictConfig) -> None:
    """Change the tokenizer in place, e.g. add a special token.

    :param tokenizer: the run's HF tokenizer (byte-level, task vocabulary or a local directory).
    :param config: the whole resolved run config.
    Called before the data is tokenised and before the model is built, so the model's vocabulary
    is sized to include whatever was added here.
    """


@hookspec
def configure_model(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: DictConfig
) -> dict[str, torch.nn.Module] | None:
    """Model surgery, and the training-only modules a plugin needs.

    :param model: the HF causal LM; change it in place (e.g. resize embeddings, patch kernels).
    :param tokenizer: the configured tokenizer.
    :param config: the whole resolved run config.
    :return: ``{name: module}`` of auxiliary modules (e.g. prediction heads). The core registers
        them under ``ctx.aux[name]`` so they are optimised, checkpointed and moved to the
        device with the model, and leaves them out of the exported model. Names must be unique
        across plugins; use your plugin's name.
    """


@hookspec
def data_sources(sources: list[SourceSpec], config: DictConfig) -> None:
    """Add, remove or reweight the training mixture's sources, in place.

    :param sources: the ``data.sources`` list as :class:`litplug.data.sources.SourceSpec` objects.
    :param config: the whole resolved run config.
    """


@hookspec
def callbacks(config: DictConfig) -> list[Callback] | None:
    """Lightning callbacks the plugin wants in the trainer (e.g. keep an early checkpoint).

    A callback gets Lightning's ``pl_module``; ``litplug.api.context(pl_module)`` turns it into a
    :class:`litplug.api.StepContext` (model, tokenizer, config, ``export``, ``losses``, ``log``).

    :return: a list of callbacks, or None.
    """


@hookspec(firstresult=True)
def configure_optimizer(param_groups: list[dict[str, Any]], config: DictConfig) -> torch.optim.Optimizer | None:
    """The optimizer (an SGD, Lion or Muon method is a plugin).

    Exclusive: at most one plugin besides ``core`` may implement it; ``core`` builds AdamW from
    ``optim.*``. The learning-rate schedule (``optim.schedule``, ``optim.warmup_steps``) is applied to
    whatever optimizer is returned, and its state is checkpointed and resumed by Lightning.

    :param param_groups: ``[{"params": [...], "weight_decay": optim.weight_decay}, {"params": [...],
        "weight_decay": 0.0}]``: matrices, then biases and norms; every trainable parameter of the model
        and the auxiliary modules, each once.
    :param config: the whole resolved run config (``config.optim.lr`` and friends).
    """


# ---------------------------------------------------------------------------------------------
# training step: called on every batch, in this order. Step hooks get a StepContext (``ctx``):
# stage, global_step, rank, world_size, model, aux, tokenizer, config, log(), and lazy logits.
# ---------------------------------------------------------------------------------------------


@hookspec
def on_step_start(ctx: StepContext) -> None:
    """Called once per optimizer step in training, before the step's first batch is transformed and
    before the optimizer moves the weights (e.g. refresh a cached SVD). ``ctx.batch`` is that first
    (micro-)batch; ``ctx.global_step`` is the number of steps completed (0 before the first)."""


@hookspec
def transform_batch(batch: dict[str, torch.Tensor], stage: str, ctx: StepContext) -> None:
    """Rewrite a batch in place before the forward pass.

    :param batch: ``input_ids`` [B, T], ``labels`` [B, T] (already shifted: ``labels[:, t]`` is the
        target of position t; ``-100`` means no loss), ``attention_mask`` [B, T] and
        ``answer_mask`` [B, T] (True where the target is part of a task's answer).
    :param stage: ``"train"``, ``"validate"`` or ``"test"`` (also ``ctx.stage``).
    :param ctx: the step context (tokenizer, step counter, rank, config).
    """


@hookspec(firstresult=True)
def lm_loss(
    hidden: torch.Tensor, head: OutputHead, labels: torch.Tensor, ctx: StepContext
) -> torch.Tensor | None:
    """The main language-modelling loss, from the backbone's final hidden states.

    Exclusive: at most one plugin besides ``core`` may implement it (a fused kernel, say); two are
    a start-up error naming both. Stops at the first non-None result; ``core`` (cross-entropy of
    ``head.logits(hidden)``, mean over targets that are not -100, equal to HF's own loss) runs last.

    :param hidden: [B, T, H] final hidden states (after the final norm).
    :param head: the model's own output head (:class:`litplug.head.OutputHead`):
        ``head.logits(hidden)`` is exactly ``model(input_ids).logits``, including the logit scaling
        and soft-capping some architectures apply (Granite, Cohere, Gemma-2/3). A fused kernel reads
        ``head.weight``, ``head.bias``, ``head.scale`` and ``head.softcap``, and must apply all of them
        or refuse the model at start-up.
    :param labels: [B, T] shifted targets, -100 = ignore.
    :param ctx: the step context; ``core`` computes its loss from ``ctx.logits``, so a plugin asking for
        the logits afterwards gets the same tensor at no extra cost. A fused kernel must not touch them.
    :return: a scalar loss.
    """


@hookspec
def extra_losses(
    ctx: StepContext, batch: dict[str, torch.Tensor], hidden: torch.Tensor
) -> dict[str, torch.Tensor] | None:
    """Auxiliary loss terms, added to the LM loss and logged under ``<stage>/<name>`` in training.

    Weight the terms yourself: the core adds them as returned. Called in every stage (``ctx.stage``):
    a term that only shapes gradients returns None outside ``"train"``. The backbone runs once per
    step; ``hidden`` is the same tensor ``lm_loss`` saw, so heads and fused kernels compose. Project
    through ``ctx.head`` (not the bare ``lm_head``) for the model's own logits, or read ``ctx.logits``
    (computed once per step, shared).

    :return: ``{name: scalar tensor}``; names must be unique across plugins.
    """


@hookspec
def after_optimizer_step(ctx: StepContext, step: int) -> None:
    """Called right after every optimizer step (e.g. a parameter projection, a weight-norm metric).

    :param ctx: the step context (``ctx.model``, ``ctx.optimizer``, ``ctx.log``); it has no batch.
    :param step: the global step just completed (1 after the first step).
    """


# ---------------------------------------------------------------------------------------------
# generation: `litplug generate`, `litplug eval`, and validation-time exact-match
# ---------------------------------------------------------------------------------------------


@hookspec
def prepare_generation(prompts: list[list[int]], tokenizer: PreTrainedTokenizerBase) -> None:
    """Change the tokenised prompts in place before decoding (e.g. append pause tokens)."""


@hookspec
def logits_processors(tokenizer: PreTrainedTokenizerBase) -> list[Any] | None:
    """HF ``LogitsProcessor`` objects to apply while decoding (e.g. never emit a pause token)."""


# ---------------------------------------------------------------------------------------------
# export: the end of `litplug train`
# ---------------------------------------------------------------------------------------------


@hookspec
def export_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: DictConfig) -> None:
    """Last changes to the HF model before it is saved as a plain safetensors directory.

    Called by every export (``litplug.api.export``): the end of training, and plugins' mid-run exports
    (WiSE-FT's early checkpoints, SPT's snapshots), on a copy of the model when training goes on.
    Auxiliary modules returned by ``configure_model`` are never exported; use this hook only for
    changes made inside the HF model itself.
    """


@hookspec
def final_metrics(ctx: StepContext, metrics: dict[str, float]) -> dict[str, float] | None:
    """Metrics a plugin adds at the end of training (e.g. test-split losses, the early-stopped step).

    Called on rank 0 after the export and the evaluation; ``ctx.stage`` is ``"final"``.
    :param metrics: the run's final metrics so far (read-only).
    :return: ``{name: value}``; written to ``results.json`` and logged to MLflow at the last step.
    """


# ---------------------------------------------------------------------------------------------
# post-training and CLI: called when the user invokes the verb, on every installed plugin
# ---------------------------------------------------------------------------------------------


@hookspec
def merge_methods() -> dict[str, Callable[[list[str]], int]] | None:
    """Named merge methods for ``litplug merge METHOD ARGS...``.

    :return: ``{method_name: fn}``; ``fn(argv)`` parses its own arguments and returns an exit code.
    """


@hookspec
def cli_commands(subparsers: Any) -> None:
    """Add ``litplug`` verbs: ``subparsers.add_parser(name)`` (an argparse sub-parsers action) and
    ``set_defaults(func=fn)``,
    where ``fn(args) -> int`` returns the exit code. Declare each verb under the entry-point group
    ``litplug.verbs`` (``verb = "<the plugin's litplug.plugins object>"``): only the plugin that
    declares the invoked verb is imported, and this hook is called on it alone."""
