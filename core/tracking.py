"""MLflow through Lightning's logger: where runs go, and the provenance every run records."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import litplug

if TYPE_CHECKING:
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow import MlflowClient

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(cfg: DictConfig) -> str:
    """``tracking.uri``, or a sqlite file beside the runs (MLflow refuses the old ./mlruns store)."""
    if cfg.tracking.uri:
        return str(cfg.tracking.uri)
    return f"sqlite:///{Path(cfg.run.output_dir).resolve() / 'mlflow.db'}"


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def provenance_tags(plugins: dict[str, tuple[str | None, str | None]], config_path: str | None) -> dict[str, str]:
    """Tags: litplug version, each active plugin's distribution and version, git revision."""
    tags = {"litplug.version": litplug.__version__, "litplug.plugins": ",".join(plugins) or "none"}
    for name, (dist, version) in plugins.items():
        tags[f"litplug.plugin.{name}"] = f"{dist or '?'}=={version or '?'}"
    if config_path:
        tags["litplug.config_file"] = str(config_path)
    revision = git_revision()
    if revision:
        tags["git.revision"] = revision
    return tags


def artifact_location(uri: str) -> str | None:
    """Artifacts of a new experiment in a sqlite store go beside the database file.

    MLflow's default for a database store is ``./mlruns`` under whatever directory the command ran
    in, which scatters a run's artifacts away from its metrics. A server (http) decides for itself.
    """
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


def experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (artifacts beside a sqlite store) if it is new."""
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name, artifact_location(uri))


def prepare_store(uri: str, experiment: str) -> None:
    """Create a sqlite store's schema and the experiment while holding a file lock.

    Two runs started at once against a new ``mlflow.db`` would otherwise both run MLflow's schema
    migration (one fails with "duplicate column") or both create the experiment.
    """
    if not uri.startswith("sqlite:///"):
        return
    from filelock import FileLock
    from mlflow import MlflowClient

    db = Path(uri.removeprefix("sqlite:///")).resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{db}.lock", timeout=300):
        experiment_id(MlflowClient(tracking_uri=uri), experiment, uri)


def make_logger(cfg: DictConfig, tags: dict[str, str], run_id: str | None) -> MLFlowLogger:
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.utilities import rank_zero_only

    uri = tracking_uri(cfg)
    if getattr(rank_zero_only, "rank", 0) == 0:  # only rank 0 ever writes to the store
        prepare_store(uri, cfg.tracking.experiment)
    return MLFlowLogger(experiment_name=cfg.tracking.experiment, run_name=cfg.run.name, tracking_uri=uri,
                        tags=tags, run_id=run_id, save_dir=None, artifact_location=artifact_location(uri))


def flat_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as MLflow params (dotted keys)."""
    out: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, list) and any(isinstance(v, dict) for v in node):
            for i, value in enumerate(node):
                walk(value, f"{prefix}.{i}")
        else:
            out[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out
