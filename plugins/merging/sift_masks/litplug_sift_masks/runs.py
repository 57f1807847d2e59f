"""Finetune runs as store tasks: train one with SIFT, read what a finished run recorded, and
re-derive a task's weights by re-running its recorded config (the exact-unlearning path)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from litplug_sift_masks.errors import StoreError
from litplug_sift_masks.hfdir import content_digest, resolve_model_dir
from litplug_sift_masks.store import SiftStore, TaskRecord

PLUGIN = "sift_masks"


def data_fingerprint(config: dict[str, Any]) -> str:
    """sha256 of the run's data section (sources, seeds, tokenizer, sequence layout)."""
    return hashlib.sha256(json.dumps(config.get("data", {}), sort_keys=True, default=str).encode()).hexdigest()


def read_run(run_dir: Path) -> dict[str, Any]:
    """The resolved config a finished run saved."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file() or not (Path(run_dir) / "export").is_dir():
        raise StoreError(f"'{run_dir}' is not a finished litplug run (it needs config.yaml and export/).")
    return yaml.safe_load(path.read_text()) or {}


def sift_section(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    section = (config.get("plugins") or {}).get(PLUGIN)
    if section is None or not section.get("enabled", True):
        raise StoreError(f"Run '{run_dir}' was not trained with the sift_masks plugin (its config has no enabled "
                         f"plugins.{PLUGIN}), so its task vector is not sign-fixed. Train it with "
                         "`litplug sift train-task CONFIG`.")
    return section


def base_of_run(config: dict[str, Any], run_dir: Path) -> Path:
    """theta_0 of a run: plugins.sift_masks.base_model, else model.path."""
    base = sift_section(config, run_dir).get("base_model") or (config.get("model") or {}).get("path")
    if not base:
        raise StoreError(f"Run '{run_dir}' did not start from a base model directory (model.path is empty), so its "
                         "theta_0 cannot be found. Finetune from an exported model: model.path=DIR data.tokenizer=DIR.")
    return resolve_model_dir(base)


def task_record(run_dir: Path, name: str | None = None) -> TaskRecord:
    config = read_run(run_dir)
    return TaskRecord(
        name=name or str(config.get("run", {}).get("name") or Path(run_dir).name),
        seed=config.get("run", {}).get("seed"),
        data_fingerprint=data_fingerprint(config),
        config=config,
        run_dir=str(Path(run_dir).resolve()),
    )


def check_run_fits(store: SiftStore, run_dir: Path) -> None:
    """The run's sign seed and base model are the store's (from its config; the streaming sign check
    in :meth:`SiftStore.add` backs this up entry by entry)."""
    config = read_run(run_dir)
    seed = int(sift_section(config, run_dir).get("sign_seed", 0))
    if seed != store.sign_seed:
        raise StoreError(f"Run '{run_dir}' was trained with plugins.sift_masks.sign_seed={seed}, but store "
                         f"'{store.root}' uses sign seed {store.sign_seed}. Retrain it with "
                         f"plugins.sift_masks.sign_seed={store.sign_seed}, or add it to another store.")
    base = base_of_run(config, run_dir)
    if base.is_dir() and content_digest(base) != store.base_digest:
        raise StoreError(f"Run '{run_dir}' was finetuned from '{base}', whose weights differ from the store's base "
                         f"model (copied from {store.manifest['base']['source']}). Tasks of one store must share "
                         "theta_0.")


def add_run(store_root: Path, run_dir: Path, name: str | None = None) -> dict[str, Any]:
    """Add a finished run to the store, creating the store from the run's base model if needed."""
    run_dir = Path(run_dir)
    record = task_record(run_dir, name)
    created = False
    if not (Path(store_root) / "manifest.json").exists():
        config = read_run(run_dir)
        seed = int(sift_section(config, run_dir).get("sign_seed", 0))
        SiftStore.create(store_root, base_of_run(config, run_dir), seed)
        created = True
    store = SiftStore(store_root)
    try:
        check_run_fits(store, run_dir)
        return store.add(resolve_model_dir(run_dir), record)
    except BaseException:
        if created:  # a store this call created holds nothing else: leave no trace of it
            shutil.rmtree(store_root, ignore_errors=True)
        raise


def train_task(config_path: str | None, overrides: list[str], source: str | None = None) -> Path:
    """``litplug train`` with sift_masks enabled; returns the finished run directory. ``source`` keeps only
    the data source of that name (one owner of a config that lists several)."""
    from omegaconf import OmegaConf

    from litplug.api import ConfigError, load_config, source_name, source_specs, to_yaml, train_command

    cfg = load_config(config_path, overrides)
    if source is not None:
        names = [source_name(s) for s in source_specs(cfg)]
        if source not in names:
            raise ConfigError(f"--source {source}: the config's data.sources has no source of that name "
                              f"(names: {', '.join(names)}).")
        chosen = OmegaConf.to_container(cfg.data.sources[names.index(source)], resolve=True)
        chosen = {k: v for k, v in chosen.items() if v is not None}
        overrides = [*overrides, f"data.sources=[{json.dumps(chosen)}]"]
        cfg = load_config(config_path, overrides)
    section = cfg.plugins.get(PLUGIN)
    enabled = PLUGIN in cfg.plugins and (section is None or section.get("enabled", True))
    if not enabled:
        overrides = [*overrides, f"plugins.{PLUGIN}={{}}"]
    run = train_command(config_path, overrides)
    saved = run.run_dir / "config.yaml"
    if not saved.is_file():  # the core writes it only when tracking is on; the store needs it to re-derive
        saved.write_text(to_yaml(run.cfg))
    return run.run_dir


def rederive(store: SiftStore, record: dict[str, Any], workdir: Path) -> Path:
    """Re-run task ``record``'s finetune from its recorded config, starting from the store's own copy
    of theta_0; returns the new export directory. Only the output location, tracking and evaluation
    size are changed, none of which touch the training computation."""
    from litplug.api import setup_run, train_run

    config = record.get("config")
    if not config:
        raise StoreError(f"Task '{record['name']}' has no recorded config, so it cannot be re-derived. Pass the "
                         "task's run directory with --from RUN_DIR.")
    config = json.loads(json.dumps(config))
    original_base = str((config.get("model") or {}).get("path") or "")
    base = str(store.base_dir.resolve())
    config.setdefault("model", {})["path"] = base
    if str(config.get("data", {}).get("tokenizer")) == original_base:
        config["data"]["tokenizer"] = base
    if config.get("plugins", {}).get(PLUGIN, {}).get("base_model"):
        config["plugins"][PLUGIN]["base_model"] = base
    config_file = Path(workdir) / "task.yaml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    overrides = [f"run.output_dir={workdir}", "run.name=rederived", "tracking.enabled=false", "eval.num_examples=1"]
    run = setup_run(str(config_file), overrides)
    train_run(run)
    return run.export_dir


def unlearn_task(store_root: Path, name: str, from_dir: Path | None = None, retrain: bool = False) -> str:
    """Unlearn ``name``; returns where its task vector came from (a run export or a re-run)."""
    store = SiftStore(store_root)
    record = store.task(name)
    if from_dir is not None and not retrain:
        store.unlearn(name, resolve_model_dir(from_dir))
        return str(from_dir)
    recorded = Path(record["run_dir"]) / "export" if record.get("run_dir") else None
    if not retrain and recorded is not None and recorded.is_dir() and \
            content_digest(recorded) == record.get("weights_digest"):
        store.unlearn(name, recorded)
        return str(recorded)
    with tempfile.TemporaryDirectory(prefix="sift-rederive-") as workdir:
        export = rederive(store, record, Path(workdir))
        store.unlearn(name, export)
    return "re-run of its recorded config"
