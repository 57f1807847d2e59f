"""The run directory's layout, spelled out once: every verb and plugin reads paths from here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunDir:
    """``<run.output_dir>/<run.name>``::

        config.yaml        the resolved config the run trained with
        checkpoints/       last.ckpt (resume point) and step=N.ckpt
        export/            the plain HF model (safetensors) written at the end
        results.json       final metrics and evaluation
        loss_curve.png     train and per-source validation loss over the run (loss_history.json: its data)
        eval_summary.md    the evaluation at a glance: metrics and sample answers per task
        eval.json          `litplug eval RUN` results
        mlflow_run.json    {"run_id", "tracking_uri"} of the run's MLflow run
        <plugin>/          a plugin's own outputs (``plugin_dir(name)``)
    """

    path: Path

    @classmethod
    def of(cls, config: Any) -> RunDir:
        """The run directory a config names (``run.output_dir`` / ``run.name``)."""
        return cls(Path(config.run.output_dir) / config.run.name)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints / "last.ckpt"

    def checkpoint(self, step: int) -> Path:
        """The kept checkpoint of ``step`` (``trainer.keep_checkpoints``)."""
        return self.checkpoints / f"step={step}.ckpt"

    @property
    def export(self) -> Path:
        return self.path / "export"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    @property
    def loss_curve(self) -> Path:
        return self.path / "loss_curve.png"

    @property
    def loss_history(self) -> Path:
        return self.path / "loss_history.json"

    @property
    def eval_summary(self) -> Path:
        return self.path / "eval_summary.md"

    @property
    def eval_file(self) -> Path:
        return self.path / "eval.json"

    @property
    def mlflow_file(self) -> Path:
        return self.path / "mlflow_run.json"

    @property
    def lock_file(self) -> Path:
        """Outside the directory, so a fresh run can hold it before the directory exists."""
        return self.path.parent / f".{self.path.name}.lock"

    def plugin_dir(self, name: str) -> Path:
        """Where plugin ``name`` keeps its own outputs (early checkpoints, snapshots)."""
        return self.path / name

    def is_finished(self) -> bool:
        """A finished run: its config and its export are both there."""
        return self.config_file.is_file() and self.export.is_dir()

    def mlflow_run(self) -> dict[str, str] | None:
        """``{"run_id", "tracking_uri"}`` of the run's MLflow run, or None when it was not tracked."""
        return json.loads(self.mlflow_file.read_text()) if self.mlflow_file.is_file() else None

    def results(self) -> dict[str, Any]:
        return json.loads(self.results_file.read_text()) if self.results_file.is_file() else {}
