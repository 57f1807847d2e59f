"""MLflow through Lightning's logger: where runs go, and the provenance every run records.

Tracking never blocks or kills training: a server that does not answer at start-up stops
``litplug train`` before anything is written (exit 2), and one that stops answering mid-run gets
one warning, after which the run goes on without it (the logger :func:`make_logger` builds).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

import litplug
from litplug.errors import LitplugError

if TYPE_CHECKING:
    from lightning.pytorch.loggers import MLFlowLogger
    from mlflow import MlflowClient

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(cfg: DictConfig) -> str:
    """``tracking.uri``, or a sqlite file beside the runs (MLflow refuses the old ./mlruns store)."""
    if cfg.tracking.uri:
        return str(cfg.tracking.uri)
    return f"sqlite:///{Path(cfg.run.output_dir).resolve() / 'mlflow.db'}"


def ui_hint(uri: str, run_id: str, experiment_id: str | None = None) -> str:
    """How to look at a run: a server already serves a UI, so its link; a database store needs
    ``mlflow ui`` started on it first."""
    page = f"#/experiments/{experiment_id}/runs/{run_id}" if experiment_id else ""
    if is_http(uri):
        return f"Open it in the MLflow UI: {uri.rstrip('/')}/{page}"
    if uri.startswith("databricks"):
        return "Open it in your Databricks workspace's Experiments page."
    then = f"   then http://127.0.0.1:5000/{page}" if page else ""
    return f"Open the UI:  mlflow ui --backend-store-uri {uri}{then}"


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
    from litplug.sweep.command import parent_tags

    tags.update(parent_tags())  # a cell of `litplug sweep`: a child of the sweep's MLflow run
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


class TrackingError(LitplugError):
    """The tracking server does not answer at start-up: exit code 2, nothing written."""


# MLflow's defaults (7 retries, exponential backoff, 120 s timeout) stall a run for minutes on a dead
# server before failing it. Set for the process when tracking goes over http(s), unless the user has.
BOUNDED_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "20"}
PROBE_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}

_OUTAGES: dict[str, str] = {}  # MLflow run id -> what the summary says about its interrupted tracking


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def bound_http_requests(uri: str) -> None:
    """Short timeouts and few retries for MLflow's HTTP calls (the user's own settings win)."""
    if is_http(uri):
        for key, value in BOUNDED_HTTP.items():
            os.environ.setdefault(key, value)


@contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def tracking_errors() -> tuple[type[BaseException], ...]:
    """What a failing store raises: MLflow's own errors, and the HTTP/socket errors under them."""
    from mlflow.exceptions import MlflowException
    from requests.exceptions import RequestException

    return MlflowException, RequestException, OSError


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


def check_server(cfg: DictConfig) -> None:
    """An http(s) ``tracking.uri`` must answer now, within seconds, or the run is refused (exit 2).

    Without this, MLflow retries a dead server for minutes, silently, then fails with a traceback.
    Asks for the experiment through MLflow's own client, so authentication settings apply.
    """
    if not cfg.tracking.enabled:
        return
    uri = tracking_uri(cfg)
    if not is_http(uri):
        return
    bound_http_requests(uri)
    from mlflow import MlflowClient

    try:
        with _env(PROBE_HTTP):
            MlflowClient(tracking_uri=uri).get_experiment_by_name(cfg.tracking.experiment)
    except tracking_errors() as exc:
        raise TrackingError(
            f"The MLflow tracking server {uri} (tracking.uri) does not answer: {_reason(exc)}. Start the server "
            f"(e.g. `mlflow server --host 127.0.0.1 --port PORT`), fix tracking.uri, or train without tracking "
            f"with tracking.enabled=false."
        ) from None


def outage(run_id: str | None) -> str | None:
    """The summary's line about a run whose tracking stopped mid-run, or None."""
    return _OUTAGES.get(run_id) if run_id else None


def mark_killed(run_file: Path) -> None:
    """Mark the run's MLflow run KILLED: stopped by a signal, resumable (Lightning said FAILED)."""
    if not run_file.is_file():
        return
    info = json.loads(run_file.read_text())
    if not info.get("run_id") or info["run_id"] in _OUTAGES:
        return
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus

    try:
        MlflowClient(tracking_uri=info["tracking_uri"]).set_terminated(info["run_id"],
                                                                        RunStatus.to_string(RunStatus.KILLED))
    except tracking_errors() as exc:
        print(f"litplug: warning: could not mark MLflow run {info['run_id']} KILLED in {info['tracking_uri']} "
              f"({_reason(exc)}).", file=sys.stderr)


def _fallback(method: str) -> Any:
    """What a skipped client call returns: ``get_run`` an empty run (the end of a run reads its
    metrics), anything else None."""
    if method == "get_run":
        return SimpleNamespace(info=SimpleNamespace(run_id=None, status=None),
                               data=SimpleNamespace(metrics={}, params={}, tags={}))
    return None


class _GuardedClient:
    """An ``MlflowClient`` whose calls, once one has failed, are skipped: the run goes on without it."""

    def __init__(self, client: Any, owner: Any) -> None:
        self._client, self._owner = client, owner

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._client, name)
        if not callable(value):
            return value

        @functools.wraps(value)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if self._owner.outage is not None:
                return _fallback(name)
            try:
                return value(*args, **kwargs)
            except tracking_errors() as exc:
                self._owner.lost(exc)
                return _fallback(name)

        return guarded


@functools.cache
def _resilient_logger_class() -> type:
    from lightning.pytorch.loggers import MLFlowLogger
    from lightning.pytorch.loggers.logger import rank_zero_experiment

    class ResilientMLFlowLogger(MLFlowLogger):
        """Lightning's MLFlowLogger whose failures warn once and switch tracking off for the run.

        ``experiment`` (which every logging call, Lightning's and the core's, goes through) is the
        MLflow client wrapped so that a failed call warns and later calls are skipped.
        """

        outage: str | None = None
        _last_step: int | None = None

        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            if self.outage is None and not self._initialized:
                try:
                    MLFlowLogger.experiment.fget(self)  # creates or reopens the run
                except tracking_errors() as exc:
                    self.lost(exc)
            return _GuardedClient(self._mlflow_client, self)

        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            self._last_step = step
            super().log_metrics(metrics, step)

        def lost(self, exc: BaseException) -> None:
            at = f" at step {self._last_step}" if self._last_step is not None else ""
            self.outage = (f"MLflow tracking was interrupted{at}: {self._tracking_uri} stopped answering, so the "
                           f"MLflow run {self._run_id} is incomplete; results.json and the export are complete.")
            if self._run_id:
                _OUTAGES[self._run_id] = self.outage
            print(f"litplug: warning: MLflow tracking at {self._tracking_uri} failed{at} ({_reason(exc)}). "
                  f"Training continues without tracking: nothing more is logged to MLflow for this run, whose "
                  f"final metrics will be in results.json.", file=sys.stderr, flush=True)

    return ResilientMLFlowLogger


def make_logger(cfg: DictConfig, tags: dict[str, str], run_id: str | None) -> MLFlowLogger:
    from lightning.pytorch.utilities import rank_zero_only

    uri = tracking_uri(cfg)
    bound_http_requests(uri)
    if getattr(rank_zero_only, "rank", 0) == 0:  # only rank 0 ever writes to the store
        prepare_store(uri, cfg.tracking.experiment)
    return _resilient_logger_class()(experiment_name=cfg.tracking.experiment, run_name=cfg.run.name,
                                     tracking_uri=uri, tags=tags, run_id=run_id, save_dir=None,
                                     artifact_location=artifact_location(uri))


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
