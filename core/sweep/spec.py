"""What a sweep is: ordered stages, each a grid of litplug commands, and the report to build.

A sweep file (a YAML whose top level has ``stages:``)::

    name: fsp-tau                     # optional: default <file stem>
    stages:
      - name: pretrain
        config: ../examples/quickstart.yaml          # relative to this file
        grid: {run.seed: [0, 1, 2]}
        overrides: [trainer.max_steps=200]
      - name: finetune
        config: finetune.yaml
        grid: {run.seed: [0, 1, 2], plugins.fsp.tau: [4, 8]}
        overrides: ["model.path={pretrain}/export", "data.tokenizer={pretrain}/export"]
      - name: quant
        verb: quant-report                           # any litplug verb; default train
        args: ["{finetune}", "--out", "{dir}/report.json"]
    report: {stage: finetune, metrics: ["eval/*/exact_match"], baseline: {plugins.fsp.tau: 4}}

``{STAGE}`` is the run directory of the earlier stage's cell that agrees with this cell on the keys
both grids sweep (exactly one must); ``{dir}`` is this cell's own directory; ``{KEY}`` a swept value.
The quick form ``litplug sweep CONFIG key=a,b ...`` is a one-stage sweep of ``litplug train``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litplug.errors import ConfigError
from litplug.sweep.grid import cell_name, expand, parse_overrides

STAGE_KEYS = {"name", "verb", "config", "grid", "overrides", "args"}
REPORT_KEYS = {"stage", "metrics", "baseline", "replicate"}
TOP_KEYS = {"name", "stages", "report"}
DEFAULT_METRICS = ["val/*/loss", "eval/*/exact_match", "eval/*/pass@*"]
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")


@dataclass
class Stage:
    name: str
    verb: str = "train"
    config: str | None = None  # train: the base config (None: the embedded defaults)
    axes: dict[str, list[str]] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)  # train: fixed key=value overrides
    args: list[str] = field(default_factory=list)  # other verbs: the arguments, with placeholders


@dataclass
class Report:
    stage: str  # the stage(s) reported, comma-separated: several stages compare side by side (grouped by stage)
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    baseline: dict[str, str] | None = None
    replicate: str = "run.seed"


@dataclass
class SweepSpec:
    name: str
    stages: list[Stage]
    report: Report
    source: str  # the sweep file or the base config, for messages

    def digest(self) -> str:
        text = json.dumps([s.__dict__ for s in self.stages], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass
class Cell:
    """One litplug command of a stage."""

    stage: str
    name: str
    values: dict[str, str]
    verb: str
    argv: list[str]  # the litplug arguments after the verb
    directory: Path  # train: the run directory; other verbs: a folder made for the cell
    needs: list[str] = field(default_factory=list)  # ids of earlier cells it refers to

    @property
    def id(self) -> str:
        return f"{self.stage}/{self.name}"


def _strings(values: Any, where: str) -> list[str]:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where} must be a non-empty list of values.")
    return [json.dumps(v) if isinstance(v, (dict, list)) else str(v) for v in values]


def _grid(raw: Any, where: str) -> dict[str, list[str]]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): _strings(v, f"{where}.{k}") for k, v in raw.items()}
    if isinstance(raw, list):  # ["run.seed=0,1,2", ...]
        axes, fixed = parse_overrides([str(x) for x in raw], where)
        if fixed:
            raise ConfigError(f"{where}: {fixed[0]!r} has one value; put fixed settings under overrides.")
        return axes
    raise ConfigError(f"{where} must be a mapping of key: [values] (or a list of key=a,b items).")


def is_sweep_file(path: str) -> bool:
    """A YAML whose top level has ``stages:`` is a sweep file; any other file is a run config."""
    from litplug.config import strict_yaml_load

    try:
        data = strict_yaml_load(Path(path).read_text())
    except (OSError, ValueError):
        return False
    except Exception:  # noqa: BLE001 - a broken YAML is the run config loader's to report
        return False
    return isinstance(data, dict) and "stages" in data


def load_sweep_file(path: str, extra: list[str]) -> SweepSpec:
    """Parse and check a sweep file; ``extra`` overrides apply to every train stage (comma lists add axes)."""
    from litplug.config import strict_yaml_load

    file = Path(path)
    try:
        data = strict_yaml_load(file.read_text())
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"Sweep file '{file}' cannot be read: {exc}") from None
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"Sweep file '{file}': unknown key(s) {sorted(unknown)} (valid: {sorted(TOP_KEYS)}).")
    if not isinstance(data.get("stages"), list) or not data["stages"]:
        raise ConfigError(f"Sweep file '{file}': 'stages' must be a non-empty list.")
    extra_axes, extra_fixed = parse_overrides(extra)
    stages: list[Stage] = []
    for i, raw in enumerate(data["stages"]):
        where = f"{file}: stages.{i}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where} must be a mapping.")
        bad = set(raw) - STAGE_KEYS
        if bad:
            raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (valid: {sorted(STAGE_KEYS)}).")
        name = str(raw.get("name", f"stage{i}"))
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in {s.name for s in stages} | {"dir"}:
            raise ConfigError(f"{where}.name '{name}' must be a unique identifier (letters, digits, _).")
        stage = Stage(name=name, verb=str(raw.get("verb", "train")), axes=_grid(raw.get("grid"), f"{where}.grid"))
        if stage.verb == "train":
            if raw.get("args"):
                raise ConfigError(f"{where}: a train stage takes overrides, not args.")
            if raw.get("config") is not None:
                config = (file.parent / str(raw["config"])).resolve()
                if not config.is_file():
                    raise ConfigError(f"{where}.config: '{config}' does not exist.")
                stage.config = str(config)
            axes, fixed = parse_overrides([str(o) for o in raw.get("overrides") or []], f"{where}.overrides")
            stage.axes = {**stage.axes, **axes, **extra_axes}
            stage.overrides = [*fixed, *extra_fixed]
        else:
            if raw.get("config") is not None or raw.get("overrides"):
                raise ConfigError(f"{where}: a '{stage.verb}' stage takes args (with placeholders), not "
                                  "config/overrides.")
            stage.args = [str(a) for a in raw.get("args") or []]
        stages.append(stage)
    report = _report(data.get("report") or {}, stages, f"{file}: report")
    return SweepSpec(name=str(data.get("name", file.stem)), stages=stages, report=report, source=str(file))


def _report(raw: dict[str, Any], stages: list[Stage], where: str) -> Report:
    bad = set(raw) - REPORT_KEYS
    if bad:
        raise ConfigError(f"{where}: unknown key(s) {sorted(bad)} (valid: {sorted(REPORT_KEYS)}).")
    trains = [s.name for s in stages if s.verb == "train"]
    stage = raw.get("stage", trains[-1] if trains else stages[-1].name)
    stage = ",".join(stage) if isinstance(stage, list) else str(stage)
    for name in stage.split(","):
        if name not in {s.name for s in stages}:
            raise ConfigError(f"{where}.stage '{name}' is not a stage (stages: {', '.join(s.name for s in stages)}).")
    baseline = raw.get("baseline")
    if baseline is not None and not isinstance(baseline, dict):
        raise ConfigError(f"{where}.baseline must be a mapping of swept key: value.")
    report = Report(stage=stage, metrics=[str(m) for m in raw.get("metrics") or DEFAULT_METRICS],
                    baseline={str(k): str(v) for k, v in baseline.items()} if baseline else None,
                    replicate=str(raw.get("replicate", "run.seed")))
    axes: dict[str, list[str]] = {"stage": stage.split(",")} if "," in stage else {}
    for s in stages:
        if s.name in stage.split(","):
            for key, values in s.axes.items():
                axes.setdefault(key, []).extend(v for v in values if v not in axes.get(key, []))
    for key, value in (report.baseline or {}).items():
        if key not in axes or value not in axes[key]:
            raise ConfigError(f"{where}.baseline: {key}={value} is not a cell of stage '{stage}' "
                              f"(swept: {', '.join(f'{k}={v}' for k, v in axes.items()) or 'nothing'}).")
    return report


def quick_spec(config: str | None, overrides: list[str], baseline: list[str], metrics: list[str]) -> SweepSpec:
    """``litplug sweep CONFIG key=a,b ...``: one train stage."""
    if config is not None and not Path(config).is_file():
        raise ConfigError(f"Config file '{config}' does not exist.")
    axes, fixed = parse_overrides(overrides)
    if not axes:
        raise ConfigError("Nothing to sweep: give at least one key=a,b or key=range(a,b) override, or a sweep "
                          "file with stages:.")
    stage = Stage(name="train", config=str(Path(config).resolve()) if config else None, axes=axes, overrides=fixed)
    report_raw: dict[str, Any] = {}
    if baseline:
        report_raw["baseline"] = dict(b.split("=", 1) for b in baseline)
    if metrics:
        report_raw["metrics"] = metrics
    report = _report(report_raw, [stage], "--baseline/--metric")
    name = Path(config).stem if config else "defaults"
    spec = SweepSpec(name=name, stages=[stage], report=report, source=config or "the embedded defaults")
    spec.name = f"{name}-{spec.digest()}"
    return spec


def plan(spec: SweepSpec, sweep_dir: Path, tracking_uri: str | None) -> list[list[Cell]]:
    """The cells of every stage, references resolved; a reference that matches no cell, or several, is a
    ConfigError before anything runs."""
    stages: list[list[Cell]] = []
    for stage in spec.stages:
        cells = []
        for values in expand(stage.axes):
            name = cell_name(values)
            directory = sweep_dir / stage.name / name
            needs: list[str] = []

            def fill(text: str, stage: Stage = stage, values: dict[str, str] = values,
                     directory: Path = directory, needs: list[str] = needs) -> str:
                def one(match: re.Match) -> str:
                    key = match[1]
                    if key == "dir":
                        return str(directory)
                    if key in values:
                        return values[key]
                    earlier = next((cs for s, cs in zip(spec.stages, stages) if s.name == key), None)
                    if earlier is None:
                        return match[0]  # not a placeholder (e.g. part of a YAML mapping)
                    found = [c for c in earlier if all(values.get(k, v) == v for k, v in c.values.items()
                                                       if k in stage.axes)]
                    if len(found) != 1:
                        raise ConfigError(f"{spec.source}: stage '{stage.name}' cell {values} refers to "
                                          f"{{{key}}}, which matches {len(found)} of its cells; the two stages "
                                          "must sweep the keys that tell those cells apart.")
                    needs.append(found[0].id)
                    return str(found[0].directory)

                return PLACEHOLDER.sub(one, text)

            if stage.verb == "train":
                argv = ([stage.config] if stage.config else []) + [fill(o) for o in stage.overrides]
                argv += [f"{k}={v}" for k, v in values.items()]
                argv += [f"run.output_dir={directory.parent}", f"run.name={name}"]
                if tracking_uri:
                    argv.append(f"tracking.uri={tracking_uri}")
            else:
                argv = [fill(a) for a in stage.args]
            cells.append(Cell(stage.name, name, values, stage.verb, argv, directory, needs))
        stages.append(cells)
    return stages
