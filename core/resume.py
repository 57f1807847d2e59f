"""What may change when a run resumes.

Re-running the same command continues a run from its last checkpoint. Re-running it with a *changed*
config used to resume silently with the old state: a new ``optim.lr`` was ignored, ``config.yaml`` and
MLflow kept the old values, and a new model size died in a state-dict traceback. Now the saved
``config.yaml`` is compared with the new config: keys that only say how far to go or how to watch the
run may change (:data:`MAY_CHANGE`); any other change is refused at start-up, listing the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from litplug.errors import ConfigError

# Dotted prefixes of keys a resumed run may change. `trainer.max_steps` extends (or shortens) a run:
# the learning-rate schedule is then the one for the new length, from the step reached.
MAY_CHANGE: tuple[str, ...] = (
    "trainer.max_steps", "trainer.log_every_n_steps", "trainer.val_check_interval", "trainer.limit_val_batches",
    "trainer.checkpoint_every_n_steps", "trainer.keep_checkpoints", "trainer.progress", "run.resume", "run.output_dir",
    "data.cache_dir", "data.num_workers", "tracking.", "eval.",
)


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a resolved config (lists of mappings indexed: ``data.sources.0.task``)."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(node, list) and any(isinstance(v, dict) for v in node):
        for i, value in enumerate(node):
            out.update(flatten(value, f"{prefix}.{i}"))
    else:
        out[prefix] = node
    return out


def changed_keys(saved: DictConfig | dict[str, Any], new: DictConfig) -> dict[str, tuple[Any, Any]]:
    """``{key: (saved value, new value)}`` for every key whose value differs."""
    old_flat = flatten(OmegaConf.to_container(saved, resolve=True) if isinstance(saved, DictConfig) else saved)
    new_flat = flatten(OmegaConf.to_container(new, resolve=True))
    missing = object()
    return {key: (old_flat.get(key, missing), new_flat.get(key, missing))
            for key in sorted(set(old_flat) | set(new_flat))
            if old_flat.get(key, missing) != new_flat.get(key, missing)}


def _allowed(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in MAY_CHANGE)


def check_resume_config(config_file: Path, cfg: DictConfig, run_dir: Path) -> dict[str, tuple[Any, Any]]:
    """Refuse a resume whose config differs from the run's in any key outside :data:`MAY_CHANGE`;
    return the allowed changes (so the caller can record them)."""
    if not config_file.is_file():
        return {}
    saved = OmegaConf.load(config_file)
    changes = changed_keys(saved, cfg)
    refused = {k: v for k, v in changes.items() if not _allowed(k)}
    if refused:
        shown = "; ".join(f"{k}: {_show(old)} -> {_show(new)}" for k, (old, new) in list(refused.items())[:8])
        more = f" (and {len(refused) - 8} more)" if len(refused) > 8 else ""
        raise ConfigError(
            f"Run directory '{run_dir}' holds a run with a different config, and resuming it would silently "
            f"keep the old one: {shown}{more}. Start a new run with another run.name, delete the directory to "
            f"start over, or re-run with the run's own config ({config_file}). Keys that may change on resume: "
            f"{', '.join(MAY_CHANGE)}."
        )
    return changes


def _show(value: Any) -> str:
    return "(absent)" if type(value) is object else repr(value)
