"""One training run, from a config to an exported model.

Everything the user can get wrong (config, plugins, data, paths) is checked in :func:`setup` before
the run directory is touched, so a bad input never leaves a half-written run behind. Re-running the
same command continues from ``<run>/checkpoints/last.ckpt``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import zipfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import pluggy
import torch
from filelock import FileLock, Timeout
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, ProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig
from transformers import PreTrainedTokenizerBase

from litplug import config as config_mod
from litplug import plugins as plugins_mod
from litplug.checkpoints import AtomicCheckpointIO
from litplug.context import StepContext
from litplug.curves import LossHistory, plot_losses
from litplug.data.datamodule import LitplugDataModule, source_specs
from litplug.data.mixture import MixtureAccounting
from litplug.data.sources import SourceSpec
from litplug.data.storage import ShardDir, is_remote
from litplug.data.tasks import TaskError, get_task
from litplug.errors import ConfigError, DataError
from litplug.evaluate import check_eval_config, eval_summary_markdown, evaluate_all, flat_metrics
from litplug.export import export
from litplug.head import output_head
from litplug.metrics import exact_match
from litplug.model import build_model, byte_tokenizer, load_tokenizer, word_tokenizer
from litplug.module import STEP_KEY, LitplugModule
from litplug.plugins import load_plugins  # noqa: F401 - re-exported: litplug.run.load_plugins
from litplug.progress import progress_callback
from litplug.resume import check_resume_config
from litplug.rundir import RunDir
from litplug.sharding import make_strategy
from litplug.tracking import flat_params, make_logger, provenance_tags, tracking_uri, ui_hint

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass
class Run:
    """A validated, ready-to-train run; nothing on disk has been created for it yet."""

    cfg: DictConfig
    config_path: str | None
    pm: pluggy.PluginManager
    plugins: dict[str, Any]
    records: dict[str, plugins_mod.PluginRecord]
    tokenizer: PreTrainedTokenizerBase
    sources: list[SourceSpec]
    datamodule: LitplugDataModule
    dir: RunDir
    results: dict[str, Any] = field(default_factory=dict)
    module: LitplugModule | None = None  # the trained module, once train() has run
    wall_s: float | None = None  # seconds train() took (model, fit, export, evaluation)

    @property
    def run_dir(self) -> Path:
        return self.dir.path

    @property
    def last_checkpoint(self) -> Path:
        return self.dir.last_checkpoint

    @property
    def export_dir(self) -> Path:
        return self.dir.export


def make_tokenizer(cfg: DictConfig) -> PreTrainedTokenizerBase:
    """``byte``, ``task`` (the union of the task sources' vocabularies), a local path, or ``auto``
    (task vocabulary when every source is a synthetic task, bytes otherwise)."""
    choice = cfg.data.tokenizer
    all_tasks = all(s.task for s in cfg.data.sources)
    if choice == "auto":
        choice = "task" if all_tasks else "byte"
    if choice == "byte":
        return byte_tokenizer()
    if choice == "task":
        if not all_tasks:
            raise ConfigError("data.tokenizer is 'task' but some sources are files; use 'byte' or a tokenizer path.")
        words: list[str] = []
        for i, s in enumerate(cfg.data.sources):
            try:
                words += get_task(s.task, dict(s.params)).vocab()
            except TaskError as exc:
                raise DataError(f"data.sources.{i}: {exc}") from None
        return word_tokenizer(words)
    return load_tokenizer(choice)


def check_output_dir(cfg: DictConfig) -> RunDir:
    """The runs folder exists (or can be made) and is writable; returns this run's folder."""
    root = Path(cfg.run.output_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ConfigError(f"run.output_dir '{root}' is not writable ({exc.strerror or exc}). "
                          "Choose another directory with run.output_dir=PATH.") from None
    return RunDir.of(cfg)


def setup(config_path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Run:
    """Validate everything and prepare the data; touches only the data cache."""
    cfg = config_mod.load_config(config_path, overrides)
    check_eval_config(cfg)
    pm, instances, records = load_plugins(cfg)
    run_dir = check_output_dir(cfg)
    L.seed_everything(cfg.run.seed, workers=True, verbose=False)
    tokenizer = make_tokenizer(cfg)
    pm.hook.configure_tokenizer(tokenizer=tokenizer, config=cfg)
    sources = source_specs(cfg)
    pm.hook.data_sources(sources=sources, config=cfg)
    if not sources or sum(s.weight for s in sources) <= 0:
        raise DataError("After the plugins' data_sources hooks no source has a positive weight.")
    cache: ShardDir = Path(cfg.run.output_dir) / ".cache"
    if cfg.data.cache_dir:  # a folder, or an object-store URL (a Path would fold "s3://" into "s3:/")
        cache = str(cfg.data.cache_dir) if is_remote(str(cfg.data.cache_dir)) else Path(cfg.data.cache_dir)
    datamodule = LitplugDataModule(cfg, tokenizer, sources, cache)
    datamodule.prepare()
    return Run(cfg, config_path, pm, instances, records, tokenizer, sources, datamodule, run_dir)


def _claim_run_dir(run: Run) -> bool:
    """Create or reuse the run folder; True when resuming from its last checkpoint.

    A resume must keep the run's config (:func:`litplug.resume.check_resume_config`). A folder with no
    checkpoint and no export (e.g. killed during its very first checkpoint write) holds nothing to
    lose and starts over."""
    if run.cfg.run.resume and run.last_checkpoint.is_file():
        if rank_zero_only.rank == 0:
            check_checkpoint_file(run.last_checkpoint)
            changes = check_resume_config(run.dir.config_file, run.cfg, run.run_dir)
            if changes:
                run.dir.config_file.write_text(config_mod.to_yaml(run.cfg))
                shown = ", ".join(f"{k}={new!r}" for k, (_, new) in changes.items())
                print(f"Resuming '{run.cfg.run.name}' with {shown} (was: "
                      + ", ".join(f"{old!r}" for old, _ in changes.values()) + ").", flush=True)
        return True
    if run.run_dir.exists() and any(run.run_dir.iterdir()) and rank_zero_only.rank == 0:
        if any(run.dir.checkpoints.glob("*.ckpt")) or run.export_dir.exists():
            raise ConfigError(
                f"Run directory '{run.run_dir}' already holds a run"
                + ("" if run.cfg.run.resume else " and run.resume is false")
                + ". Choose another run.name, or delete the directory to start over."
            )
    run.run_dir.mkdir(parents=True, exist_ok=True)
    return False


def check_checkpoint_file(path: Path) -> None:
    """A torch checkpoint is a zip archive: a truncated one (e.g. written by an older, non-atomic save)
    has no central directory. Refuse it by name, instead of a raw EOFError on every re-run."""
    try:
        with zipfile.ZipFile(path):
            pass
    except (zipfile.BadZipFile, OSError) as exc:
        others = sorted(p.name for p in path.parent.glob("step=*.ckpt"))
        fix = (f"copy one of the kept checkpoints ({', '.join(others[-3:])}) over it" if others
               else "delete it to start the run over")
        raise ConfigError(f"Checkpoint '{path}' is unreadable ({exc}); it was probably cut short by a crash "
                          f"during a save. To resume, {fix}.") from None


def build_module(run: Run) -> LitplugModule:
    # Seed here, not only at setup: preparing data (or finding it cached) must not change the init.
    L.seed_everything(run.cfg.run.seed, workers=True, verbose=False)
    model = build_model(run.cfg.model, run.tokenizer)
    aux: dict[str, torch.nn.Module] = {}
    for result in run.pm.hook.configure_model(model=model, tokenizer=run.tokenizer, config=run.cfg):
        for name, module in (result or {}).items():
            if name in aux:
                raise ConfigError(f"Two plugins register an auxiliary module named '{name}'.")
            aux[name] = module
    output_head(model)  # the losses see the model's own logits, or the architecture is refused here
    return LitplugModule(run.cfg, model, run.tokenizer, run.pm, aux)


def run_lock(run: Run) -> FileLock | nullcontext:
    """One ``litplug train`` per run directory: a second one on the same directory would overwrite the
    first's config, checkpoints and export. Held by rank 0 for the whole run."""
    if rank_zero_only.rank != 0:
        return nullcontext()
    lock = FileLock(str(run.dir.lock_file))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(f"Run directory '{run.run_dir}' is in use by another `litplug train` right now (lock "
                          f"{lock.lock_file}). Wait for it to finish, or choose another run.name.") from None
    return lock


def train(run: Run) -> dict[str, Any]:
    """Fit, export, evaluate, record. Returns the final metrics."""
    cfg = run.cfg
    # the model and the plugins' callbacks first: a model or plugin refused here writes nothing
    module = run.module = build_module(run)
    plugin_callbacks: list[Callback] = []
    for extra in run.pm.hook.callbacks(config=cfg):
        plugin_callbacks += list(extra or [])
    lock = run_lock(run)
    started = time.perf_counter()
    try:
        return _train(run, module, plugin_callbacks)
    finally:
        run.wall_s = time.perf_counter() - started
        if isinstance(lock, FileLock):
            lock.release()


def _train(run: Run, module: LitplugModule, plugin_callbacks: list[Callback]) -> dict[str, Any]:
    cfg = run.cfg
    resuming = _claim_run_dir(run)
    logger = None
    if cfg.tracking.enabled:
        previous = json.loads(run.dir.mlflow_file.read_text())["run_id"] if run.dir.mlflow_file.is_file() else None
        dists = {n: (r.distribution, r.version) for n, r in run.records.items()}
        logger = make_logger(cfg, provenance_tags(dists, run.config_path), previous)
    t = cfg.trainer
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=run.dir.checkpoints, every_n_train_steps=t.checkpoint_every_n_steps,
                        save_last=True, save_top_k=-1 if t.keep_checkpoints else 0, filename="{step}",
                        enable_version_counter=False),
        MixtureAccounting(),
        progress_callback(t.progress),
        LossHistory(run.dir.loss_history),
        *plugin_callbacks,
    ]
    trainer = L.Trainer(
        max_steps=t.max_steps, accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
        strategy=make_strategy(t), precision=t.precision, gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches, log_every_n_steps=t.log_every_n_steps,
        val_check_interval=t.val_check_interval or t.max_steps, check_val_every_n_epoch=None,
        limit_val_batches=t.limit_val_batches, num_sanity_val_steps=0, logger=logger or False,
        callbacks=callbacks, deterministic=t.deterministic,
        enable_progress_bar=any(isinstance(c, ProgressBar) for c in callbacks),
        enable_model_summary=False, default_root_dir=run.run_dir, use_distributed_sampler=False,
        plugins=[AtomicCheckpointIO()],
    )
    if rank_zero_only.rank == 0 and not resuming:
        run.dir.config_file.write_text(config_mod.to_yaml(cfg))
        if logger is not None:
            logger.log_hyperparams(flat_params(cfg))
            run.dir.mlflow_file.write_text(json.dumps({"run_id": logger.run_id, "tracking_uri": tracking_uri(cfg)}))
            logger.experiment.log_artifact(logger.run_id, str(run.dir.config_file))
    trainer.fit(module, datamodule=run.datamodule, ckpt_path=str(run.last_checkpoint) if resuming else None,
                weights_only=True)
    if not any(k.startswith("val/") for k in trainer.callback_metrics) and _validates_last_step(run.cfg):
        # resumed from the final checkpoint (saved before that step's validation): validate it now, as the
        # uninterrupted run did at this step (on every rank: validation is collective under DDP/FSDP)
        trainer.validate(module, datamodule=run.datamodule, verbose=False)
    module = _unsharded(run, trainer, module)
    if trainer.global_rank != 0:
        return {}
    return finish(run, trainer, module, logger)


def _unsharded(run: Run, trainer: L.Trainer, module: LitplugModule) -> LitplugModule:
    """The trained module with whole weights. Under FSDP each rank holds a shard: the full state is gathered
    (a collective, so every rank calls it) into a fresh, unsharded module on rank 0, which the export and the
    evaluation then see exactly as after a single-process run."""
    if not getattr(module, "_sharded", False):
        return module
    state = trainer.strategy.lightning_module_state_dict()  # full on rank 0, empty elsewhere
    if trainer.global_rank != 0:
        return module
    whole = build_module(run)
    whole.load_state_dict(state)
    whole.restored_metrics = dict(module.restored_metrics)
    run.module = whole
    return whole


def finish(run: Run, trainer: L.Trainer, module: LitplugModule, logger: Any) -> dict[str, Any]:
    """Export the HF model, evaluate prompt/answer tasks, write results, pictures and log artifacts."""
    model = module.model
    export(model, run.tokenizer, run.pm.hook, run.cfg, run.export_dir, in_place=True)
    metrics = {**module.restored_metrics,
               **{k: float(v) for k, v in trainer.callback_metrics.items() if k != STEP_KEY}}
    eval_results = evaluate_all(model, run.tokenizer, run.pm, run.sources, run.cfg)
    metrics.update(flat_metrics(eval_results))
    added: dict[str, float] = {}
    for extra in run.pm.hook.final_metrics(ctx=StepContext(module, "final"), metrics=dict(metrics)):
        for key, value in (extra or {}).items():
            if key in added:
                raise RuntimeError(f"two plugins return the final metric '{key}'")
            added[key] = float(value)
    metrics.update(added)
    results = {"metrics": metrics, "eval": eval_results, "export_dir": str(run.export_dir.resolve()),
               "global_step": trainer.global_step}
    if logger is not None:
        results["mlflow_run_id"] = logger.run_id
        results["mlflow_experiment_id"] = logger.experiment_id
    run.dir.results_file.write_text(json.dumps(results, indent=2))
    pictures = _write_pictures(run, trainer, eval_results)
    if logger is not None:
        client, run_id = logger.experiment, logger.run_id
        # the evaluation, plus any training value Lightning never logged (a run shorter than log_every_n_steps)
        logged = set(client.get_run(run_id).data.metrics)
        final = {k: v for k, v in metrics.items() if k not in logged}
        for key, value in {**final, **flat_metrics(eval_results), **added}.items():
            client.log_metric(run_id, key, value, step=trainer.global_step)
        for path in [run.dir.results_file, *pictures]:
            client.log_artifact(run_id, str(path))
        if run.cfg.tracking.log_model:
            client.log_artifacts(run_id, str(run.export_dir), artifact_path="model")
        logger.finalize("success")
    run.results = results
    return results


def _write_pictures(run: Run, trainer: L.Trainer, eval_results: dict[str, Any]) -> list[Path]:
    """``loss_curve.png`` (from the :class:`LossHistory` callback, with its data) and ``eval_summary.md``."""
    written = [run.dir.loss_history] if run.dir.loss_history.is_file() else []
    history = next((c for c in trainer.callbacks if isinstance(c, LossHistory)), None)
    if history is not None and plot_losses(history.series, run.dir.loss_curve,
                                           f"{run.cfg.run.name}: loss by step"):
        written.append(run.dir.loss_curve)
    if eval_results:
        run.dir.eval_summary.write_text(eval_summary_markdown(eval_results, run.cfg.run.name, trainer.global_step,
                                                              run.cfg.eval.split))
        written.append(run.dir.eval_summary)
    return written


def _validates_last_step(cfg: DictConfig) -> bool:
    t = cfg.trainer
    interval = t.val_check_interval or t.max_steps
    return t.limit_val_batches != 0 and t.max_steps % interval == 0


def summary(run: Run) -> str:
    """What a person wants to read when the run ends, at a glance: how it went, where everything is."""
    r = run.results
    metrics = r.get("metrics", {})
    took = f" in {run.wall_s:.0f} s" if run.wall_s else ""
    lines = [f"Run '{run.cfg.run.name}' finished at step {r.get('global_step')}{took}."]
    for source, res in r.get("eval", {}).items():
        extra = ", ".join(f"{k} {v:.2f}" for k, v in res.items() if k.startswith("pass@") or k == "majority_vote")
        shown = f"  {source}: exact match {res['exact_match']:.2f} on {res['num_examples']} {run.cfg.eval.split} " \
                "prompts"
        lines.append(shown + (f" ({extra})" if extra else ""))
        for sample in res.get("samples", [])[:1]:
            right = exact_match(sample["greedy"], sample["answer"])
            mark = "right" if right else f"wrong, expected {sample['answer']!r}"
            lines.append(f"      e.g. {sample['prompt']!r} -> {sample['greedy']!r} ({mark})")
    losses = [f"train {metrics['train/loss']:.4f}"] if "train/loss" in metrics else []
    losses += [f"validation {k.split('/')[1]} {v:.4f}" for k, v in sorted(metrics.items())
               if k.startswith("val/") and k.endswith("/loss")]
    if losses:
        lines.append("  loss: " + ", ".join(losses))
    others = {k: v for k, v in metrics.items() if not k.startswith(("train/", "val/", "eval/", "data/"))}
    for key, value in sorted(others.items()):
        lines.append(f"  {key} = {value:.4f}")
    lines.append(f"Exported model (plain HF, safetensors): {r.get('export_dir')}")
    pictures = [p for p in (run.dir.loss_curve, run.dir.eval_summary) if p.is_file()]
    if pictures:
        lines.append("Loss curve and evaluation: " + ", ".join(str(p) for p in pictures))
    if run.cfg.tracking.enabled and r.get("mlflow_run_id"):
        lines.append(f"MLflow run {r['mlflow_run_id']} in {tracking_uri(run.cfg)}")
        lines.append(ui_hint(tracking_uri(run.cfg), r["mlflow_run_id"], r.get("mlflow_experiment_id")))
    return "\n".join(lines)


def remove_failed_run_dir(run_dir: Path, existed_before: bool) -> None:
    """Undo a run directory this invocation created if it failed before any checkpoint."""
    if not existed_before and run_dir.exists() and not RunDir(run_dir).checkpoints.exists():
        shutil.rmtree(run_dir, ignore_errors=True)



def train_command(config_path: str | None, overrides: list[str] | tuple[str, ...] = ()) -> Run:
    """``litplug train``: set up, train, print the summary; a failure before the first checkpoint
    leaves no run directory behind. Plugin verbs that train (e.g. ``sift train-task``) reuse it.

    An unreachable tracking server is refused before anything is written. SIGTERM and Ctrl-C stop
    after the current step with a checkpoint of it, mark the MLflow run KILLED and raise
    :class:`litplug.signals.Interrupted` (exit 128 + the signal); the same command resumes.
    """
    import signal
    import sys

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from litplug import signals, tracking

    tracking.check_server(config_mod.load_config(config_path, overrides))
    with signals.handlers_restored():  # the caller's handlers, whatever setup() and Lightning install
        run = setup(config_path, overrides)
        existed = run.run_dir.exists()
        stop = signals.GracefulStop(run.last_checkpoint)
        stop.install()  # also replaces the SIGINT handler litdata's optimize leaves behind (os._exit(0))
        run.pm.register(stop, name="core-signals")  # its callbacks hook adds the stop callback
        try:
            try:
                train(run)
            except SIGTERMException:  # Lightning's own SIGTERM exit (SystemExit(None), i.e. exit 0)
                raise signals.Interrupted(signal.SIGTERM, stop.step) from None
        except signals.Interrupted as exc:
            if rank_zero_only.rank == 0:
                tracking.mark_killed(run.dir.mlflow_file)
            remove_failed_run_dir(run.run_dir, existed)
            if rank_zero_only.rank == 0:
                print(signals.interrupted_message(run.cfg, exc, run.last_checkpoint, stop.saved_step),
                      file=sys.stderr, flush=True)
            raise
        except BaseException:
            remove_failed_run_dir(run.run_dir, existed)
            raise
    if run.results:
        print(summary(run))
        note = tracking.outage(run.results.get("mlflow_run_id"))
        if note:
            print(note)
    return run
