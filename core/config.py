"""The run config: structured OmegaConf schemas, defaults <- YAML file <- ``key=value`` overrides.

Validation walks the user's keys against the schema first, so an unknown key is reported with its
full dotted path, the file it came from and the nearest valid key, instead of OmegaConf's message.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from litplug.errors import ConfigError


@dataclass
class RunConfig:
    name: str = "run"
    seed: int = 0
    output_dir: str = "runs"  # the run lives in <output_dir>/<name>
    resume: bool = True  # re-running the same command continues from <run>/checkpoints/last.ckpt


@dataclass
class ModelConfig:
    path: str | None = None  # a local HF directory; when set, the size fields below are ignored
    architecture: str = "llama"  # any HF model_type with a causal-LM head
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    intermediate_size: int = 172
    max_position_embeddings: int = 512
    tie_word_embeddings: bool = False
    attn_implementation: str = "auto"  # auto = what the model supports (sdpa, else eager) | sdpa | eager | ...
    extra: dict[str, Any] = field(default_factory=dict)  # more HF config fields


@dataclass
class SourceConfig:
    name: str = ""  # defaults to the task name or file stem
    task: str | None = None  # a synthetic task (litplug.data.tasks); or give `path`
    path: str | None = None  # a .txt / .jsonl / .parquet file or directory, local or any fsspec URL
    params: dict[str, Any] = field(default_factory=dict)  # the task's parameters
    weight: float = 1.0  # share of the training mixture (normalised over sources)
    text_field: str = "text"
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    num_train: int = 4000  # synthetic tasks: examples per split
    num_validation: int = 200
    num_test: int = 200
    validation_fraction: float = 0.05  # files: share held out for validation
    on_bad_rows: str | None = None  # files: error | skip; None = data.on_bad_rows


@dataclass
class DataConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    tokenizer: str = "auto"  # auto | byte | task | path of a local HF tokenizer directory
    seq_len: int = 64
    batch_size: int = 16
    num_workers: int = 0
    loss_on: str = "all"  # all | answer (prompt/answer sources: loss only on the answer)
    cache_dir: str | None = None  # optimized litdata shards; default <output_dir>/.cache
    shuffle: bool = True
    seed: int = 1234  # synthetic task data; fixed across run.seed so seeds vary only init and order
    on_bad_rows: str = "error"  # error | skip: a file row that is not UTF-8, not JSON or lacks the fields


@dataclass
class TrainerConfig:
    max_steps: int = 200
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    gradient_clip_val: float | None = 1.0
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    val_check_interval: int | None = None  # steps; None = only at the end
    limit_val_batches: int = 8
    checkpoint_every_n_steps: int = 50
    keep_checkpoints: bool = False  # keep every checkpoint as step=N.ckpt, not only last.ckpt
    deterministic: bool = True
    progress: str = "auto"  # auto (a bar when stdout is a terminal, else a line per log interval) | bar | lines


@dataclass
class OptimConfig:
    lr: float = 3e-3
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    warmup_steps: int = 10
    schedule: str = "cosine"  # cosine | constant


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # default: sqlite:///<output_dir>/mlflow.db
    experiment: str = "litplug"
    log_model: bool = True  # the exported model as an MLflow artifact


@dataclass
class EvalConfig:
    num_examples: int = 64  # prompts of the test split per task
    max_new_tokens: int | None = None  # default: the longest reference answer
    batch_size: int = 32
    n: int = 1  # samples per prompt (pass@k); n = 1 means greedy
    k: list[int] = field(default_factory=lambda: [1])
    temperature: float = 1.0
    split: str = "test"


@dataclass
class RootConfig:
    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    plugins: dict[str, Any] = field(default_factory=dict)  # plugins.<name>: that plugin's config


# Every plugin section may carry this key; the core reads it, the plugin never sees it.
PLUGIN_ENABLED_KEY = "enabled"

DEFAULT_SOURCES = [{"task": "arithmetic", "params": {"digits": 2}}]


def source_label(source: Any) -> str:
    """A source's name: its ``name``, else its task, else its file's stem. Metrics are logged under
    it (``val/<name>/loss``), so the names of a run's sources must differ."""
    if source.name:
        return str(source.name)
    return str(source.task) if source.task else Path(str(source.path).rstrip("/")).stem


def _suggest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return f"{hint} Valid keys here: {', '.join(sorted(valid))}."


def check_keys(data: Any, schema: type, where: str, origin: str) -> None:
    """Raise ConfigError for the first key of ``data`` that ``schema`` (a dataclass) lacks."""
    if not isinstance(data, dict):
        return
    hints = get_type_hints(schema)
    valid = [f.name for f in dataclasses.fields(schema)]
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in valid:
            raise ConfigError(f"Unknown config key '{path}' in {origin}.{_suggest(str(key), valid)}")
        hint = hints[key]
        if get_origin(hint) is list and isinstance(value, dict):
            raise ConfigError(_not_a_list(path, origin))
        if dataclasses.is_dataclass(hint):
            check_keys(value, hint, path, origin)
        elif get_origin(hint) is list and isinstance(value, list):
            (item_type,) = get_args(hint) or (Any,)
            if dataclasses.is_dataclass(item_type):
                for i, item in enumerate(value):
                    check_keys(item, item_type, f"{path}.{i}", origin)


def _not_a_list(key: str, origin: str) -> str:
    example = ("in YAML 'sources:' followed by one '- task: arithmetic' or '- path: data.jsonl' line per source, "
               "or the override data.sources=[{task: arithmetic}]") if key == "data.sources" else f"{key}=[a, b]"
    return f"Config key '{key}' in {origin} must be a list, not a mapping: write it as a list, e.g. {example}."


class DuplicateKeyError(Exception):
    """A YAML mapping sets one key twice (PyYAML would silently keep the last value)."""

    def __init__(self, key: Any, first_line: int, second_line: int) -> None:
        super().__init__(f"sets key '{key}' twice (line {first_line} and line {second_line}); only one value can "
                         "apply. Remove or rename one of them.")


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping. Keys merged in with ``<<:``
    may still be overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own check reports it
                continue
        return super().construct_mapping(node, deep=deep)


def strict_yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` on a repeated key."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' not found (working directory: {Path.cwd()}).")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"Config file '{path}' is not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line} "
                          "cannot be decoded. Save the file as UTF-8.") from None
    try:
        data = strict_yaml_load(text) or {}
    except DuplicateKeyError as exc:
        raise ConfigError(f"Config file '{path}' {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file '{path}' is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of sections (run, model, data, ...).")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with a YAML-typed value (``trainer.max_steps=10``, ``plugins.fsp.tau=8``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override '{text}' is not of the form key.path=value.")
    try:
        value = strict_yaml_load(raw) if raw else ""
    except DuplicateKeyError as exc:
        raise ConfigError(f"Override '{text}' {exc}") from None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _apply_override(cfg: DictConfig, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = cfg
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: depth + 1]), key)
    last = parts[-1]
    in_plugins = parts[0] == "plugins"
    free_form = _is_free_form(node)
    if isinstance(node, DictConfig) and last not in node and not in_plugins and not free_form:
        raise ConfigError(f"Unknown config key '{key}' in command-line override.{_suggest(last, list(node.keys()))}")
    # `key={}` empties a free-form mapping (`plugins={}`: no plugins); any other value merges into it
    try:
        target = node.get(last) if isinstance(node, DictConfig) else None
    except OmegaConfBaseException:  # a broken ${...} that this override replaces: reported later if not
        target = None
    if OmegaConf.is_list(target) and isinstance(value, dict):
        raise ConfigError(_not_a_list(key, "command-line override"))
    merge = not (value == {} and isinstance(target, DictConfig) and OmegaConf.get_type(target) is dict)
    try:
        if in_plugins or free_form:
            with _open_struct(cfg):
                OmegaConf.update(cfg, key, value, merge=merge)
        else:
            OmegaConf.update(cfg, key, value, merge=merge)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"Override '{key}={value}' is invalid: {_first_line(exc)}") from None


def _is_free_form(node: Any) -> bool:
    """A ``dict[str, Any]`` field (``plugins``, ``model.extra``, a task's ``params``) or a key the
    override itself creates inside one: any key may be added there."""
    if isinstance(node, _FreeFormNode):
        return True
    return isinstance(node, DictConfig) and (OmegaConf.is_struct(node) is False or OmegaConf.get_type(node) is dict)


class _open_struct:
    """Plugin sections are validated later, against the plugin's own schema: let them grow here."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg

    def __enter__(self) -> None:
        OmegaConf.set_struct(self.cfg, False)

    def __exit__(self, *exc: object) -> None:
        OmegaConf.set_struct(self.cfg, True)


def _child(node: Any, part: str, path: str, key: str) -> Any:
    if isinstance(node, DictConfig):
        if part not in node:
            if path.startswith("plugins") or _is_free_form(node):
                return _FreeFormNode()
            raise ConfigError(f"Unknown config key '{path}' in override '{key}'.{_suggest(part, list(node.keys()))}")
        return node[part]
    if OmegaConf.is_list(node):
        if not part.isdigit() or int(part) >= len(node):
            raise ConfigError(f"Override '{key}': '{path}' is not an index of a list of {len(node)} items.")
        return node[int(part)]
    return _FreeFormNode()


class _FreeFormNode:
    """Placeholder while walking into a free-form section that the override itself creates."""


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = (),
                check_trainer: bool = True) -> DictConfig:
    """Defaults <- YAML <- overrides, validated against the core schemas. Plugin sections are left
    for :func:`validate_plugin_config` once the plugins' classes are loaded. ``check_trainer=False`` skips
    the checks that ask Lightning's registries (importing Lightning takes seconds): for a first quick look."""
    schema = OmegaConf.structured(RootConfig)
    user: dict[str, Any] = {}
    origin = "the defaults"
    if path is not None:
        user = _read_yaml(Path(path))
        origin = f"config file '{path}'"
    check_keys(user, RootConfig, "", origin)
    try:
        cfg = OmegaConf.merge(schema, user)
    except OmegaConfBaseException as exc:
        full_key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"Config key '{full_key}' in {origin} has the wrong type: {_first_line(exc)}") from None
    for text in overrides:
        _apply_override(cfg, *parse_override(text))
    if not cfg.data.sources:
        cfg.data.sources = [OmegaConf.merge(OmegaConf.structured(SourceConfig), s) for s in DEFAULT_SOURCES]
    _check_interpolations(cfg, f"{origin} or an override" if path is not None else "an override")
    _check_values(cfg, check_trainer)
    return cfg


def _check_interpolations(cfg: DictConfig, origin: str) -> None:
    """OmegaConf resolves ``${...}`` only when a value is read: resolve everything once now, so a
    broken reference is reported here (with its key) instead of as a traceback mid-run."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        full_key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"Config key '{full_key}' (set in {origin}) has an interpolation that cannot "
                          f"be resolved: {_first_line(exc)}. Fix the ${{...}} reference (it names a config key, "
                          "e.g. ${run.name}) or write the value itself.") from None


BAD_ROWS = ("error", "skip")


def _check_values(cfg: DictConfig, check_trainer: bool = True) -> None:
    """Value checks that types alone cannot express, each naming its key."""
    betas = list(cfg.optim.betas)
    checks = [
        (cfg.data.seq_len >= 2, "data.seq_len", "must be at least 2"),
        (cfg.data.batch_size >= 1, "data.batch_size", "must be at least 1"),
        (cfg.data.num_workers >= 0, "data.num_workers", f"must be 0 (load in the main process) or more "
                                                        f"(got {cfg.data.num_workers})"),
        (cfg.data.loss_on in ("all", "answer"), "data.loss_on", "must be 'all' or 'answer'"),
        (cfg.data.on_bad_rows in BAD_ROWS, "data.on_bad_rows", f"must be 'error' or 'skip' (got "
                                                              f"'{cfg.data.on_bad_rows}')"),
        (cfg.trainer.max_steps >= 1, "trainer.max_steps", "must be at least 1"),
        (cfg.trainer.accumulate_grad_batches >= 1, "trainer.accumulate_grad_batches",
         f"must be at least 1 (got {cfg.trainer.accumulate_grad_batches}); 1 = no accumulation"),
        (cfg.optim.lr > 0, "optim.lr", "must be positive"),
        (len(betas) == 2 and all(0 <= b < 1 for b in betas), "optim.betas",
         f"must be two numbers in [0, 1), e.g. [0.9, 0.95] (got {betas})"),
        (cfg.optim.warmup_steps >= 0, "optim.warmup_steps", f"must be 0 or more (got {cfg.optim.warmup_steps})"),
        (cfg.optim.schedule in ("cosine", "constant"), "optim.schedule", "must be 'cosine' or 'constant'"),
        (cfg.trainer.checkpoint_every_n_steps >= 1, "trainer.checkpoint_every_n_steps", "must be at least 1"),
        (cfg.trainer.progress in ("auto", "bar", "lines"), "trainer.progress",
         f"must be 'auto', 'bar' or 'lines' (got '{cfg.trainer.progress}')"),
    ]
    for i, source in enumerate(cfg.data.sources):
        where = f"data.sources.{i}"
        checks.append((bool(source.task) != bool(source.path), where, "needs exactly one of 'task' or 'path'"))
        checks.append((source.weight >= 0, f"{where}.weight", f"must be >= 0 (got {source.weight})"))
        checks.append((source.on_bad_rows in (None, *BAD_ROWS), f"{where}.on_bad_rows",
                       f"must be 'error' or 'skip', or unset for data.on_bad_rows (got '{source.on_bad_rows}')"))
        checks.append((_is_plain_name(source.name) or not source.name, f"{where}.name",
                       f"is '{source.name}', but it names the source's metrics and cache folder, so it must be a "
                       "plain name: no '/' or '\\', not '.' or '..'"))
    if cfg.data.sources and sum(s.weight for s in cfg.data.sources) <= 0:
        checks.append((False, "data.sources.*.weight", "are all zero: at least one source needs a positive weight"))
    checks.append((_is_plain_name(cfg.run.name), "run.name",
                   f"is '{cfg.run.name}', but the run lives in run.output_dir/run.name and may not escape "
                   "run.output_dir, so it must be a plain folder name: no '/' or '\\', not empty, '.' or '..'. "
                   "Choose where runs go with run.output_dir=PATH"))
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"Config key '{key}' {why}.")
    _check_model(cfg.model)
    if check_trainer:
        _check_trainer(cfg.trainer)
    _check_source_names(cfg.data.sources)
    for name, section in cfg.plugins.items():
        if section is not None and not isinstance(section, DictConfig):
            raise ConfigError(f"Config key 'plugins.{name}' must be a mapping of the plugin's options "
                              f"(or {{}} for its defaults), not {section!r}.")


def _is_plain_name(name: Any) -> bool:
    text = str(name)
    separators = {"/", "\\", os.sep, os.altsep or "/", "\x00"}
    return bool(text.strip()) and text not in (".", "..") and not any(sep in text for sep in separators)


def _check_model(model: DictConfig) -> None:
    """Head counts that cannot split the hidden size (only for a model built from sizes)."""
    if model.path:
        return
    heads, kv = model.num_attention_heads, model.num_key_value_heads
    if heads < 1:
        raise ConfigError(f"Config key 'model.num_attention_heads' must be at least 1 (got {heads}).")
    if "head_dim" not in (model.extra or {}) and model.hidden_size % heads:
        raise ConfigError(f"Config key 'model.hidden_size' ({model.hidden_size}) must be divisible by "
                          f"model.num_attention_heads ({heads}): each head gets hidden_size / num_attention_heads "
                          "dimensions. Change one of them (or set model.extra.head_dim).")
    if kv is not None and (kv < 1 or heads % kv):
        raise ConfigError(f"Config key 'model.num_attention_heads' ({heads}) must be divisible by "
                          f"model.num_key_value_heads ({kv}): each key/value head serves a group of query heads. "
                          "Change one of them, or leave num_key_value_heads unset (= num_attention_heads).")


def _lightning_precisions() -> tuple[str, ...]:
    """The precision strings Lightning's Trainer accepts, read from Lightning itself."""
    try:
        from lightning.fabric.connector import (
            _PRECISION_INPUT_INT,
            _PRECISION_INPUT_STR,
            _PRECISION_INPUT_STR_ALIAS,
        )
    except ImportError:  # a Lightning that moved these private names: the values of Lightning 2.x
        return ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true",
                "bf16-mixed", "32-true", "64-true", "64", "32", "16", "bf16")
    values = (*get_args(_PRECISION_INPUT_STR), *get_args(_PRECISION_INPUT_STR_ALIAS), *get_args(_PRECISION_INPUT_INT))
    return tuple(dict.fromkeys(str(v) for v in values))


def _check_trainer(t: DictConfig) -> None:
    """What ``lightning.Trainer(...)`` would refuse (with a traceback, after the run directory exists)."""
    import torch
    from lightning.pytorch.accelerators import AcceleratorRegistry
    from lightning.pytorch.strategies import StrategyRegistry

    precisions = _lightning_precisions()
    if str(t.precision) not in precisions:
        raise ConfigError(f"Config key 'trainer.precision' is '{t.precision}', which Lightning does not accept. "
                          f"Use one of: {', '.join(precisions)} (e.g. bf16-mixed for mixed precision on a GPU).")
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if str(t.strategy).lower() not in strategies:
        close = difflib.get_close_matches(str(t.strategy).lower(), strategies, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"Config key 'trainer.strategy' is '{t.strategy}', which is not a Lightning strategy."
                          f"{hint} Use one of: {', '.join(strategies)}.")
    accelerator = str(t.accelerator)
    accelerators = ["auto", "gpu", *AcceleratorRegistry.available_accelerators()]
    if accelerator not in accelerators:
        raise ConfigError(f"Config key 'trainer.accelerator' is '{accelerator}', which is not a Lightning "
                          f"accelerator. Use one of: {', '.join(dict.fromkeys(accelerators))}.")
    has_gpu = torch.cuda.is_available() or (accelerator == "gpu" and torch.backends.mps.is_available())
    if accelerator in ("gpu", "cuda") and not has_gpu:
        raise ConfigError(f"Config key 'trainer.accelerator' is '{accelerator}', but there is no GPU here "
                          "(torch.cuda.is_available() is False: no CUDA device, or a CPU-only torch build). Use "
                          "trainer.accelerator=cpu (or auto, which picks a GPU when there is one).")
    problem = _devices_problem(t.devices, accelerator)
    if problem:
        devices = OmegaConf.to_container(t.devices) if OmegaConf.is_list(t.devices) else t.devices
        raise ConfigError(f"Config key 'trainer.devices' is {devices!r}: {problem}.")


def _devices_problem(devices: Any, accelerator: str) -> str | None:
    """Why Lightning would refuse ``devices`` (None when it is fine): a count >= 1, 'auto', and off
    the CPU also -1 (all GPUs) or GPU ids as a list or a comma string."""
    on_cpu = accelerator == "cpu"
    usage = ("give a number of devices >= 1 or 'auto'" if on_cpu else
             "give a number of devices >= 1, -1 (all GPUs), 'auto', or GPU ids such as [0, 1] or '0,1'")
    if OmegaConf.is_list(devices) or isinstance(devices, list):
        ids = list(devices)
        if on_cpu:
            return f"a list of device ids is for GPUs; with trainer.accelerator=cpu {usage}"
        ok = ids and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)
        return None if ok and len(set(ids)) == len(ids) else f"GPU ids must be distinct numbers >= 0; {usage}"
    if isinstance(devices, bool):
        return usage
    text = str(devices).strip()
    if text == "auto":
        return None
    if isinstance(devices, str) and "," in text:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if on_cpu or not parts or not all(p.isdigit() for p in parts):
            return usage
        return None
    try:
        count = int(text)
    except ValueError:
        return usage
    if count >= 1 or (count == -1 and not on_cpu):
        return None
    return f"{'0 devices means none' if count == 0 else 'a negative count'}; {usage}"


def _check_source_names(sources: Any) -> None:
    """Sources log under ``val/<name>/loss``: two with one name would collide at the first validation."""
    seen: dict[str, int] = {}
    for i, source in enumerate(sources):
        name = source_label(source)
        if name in seen:
            raise ConfigError(
                f"Config keys data.sources.{seen[name]} and data.sources.{i} are both named '{name}' (a source is "
                "named by its `name`, else its task, else its file stem), so their metrics would collide (e.g. "
                f"val/{name}/loss). Give one of them its own name, e.g. `name: {name}_{i}` on data.sources.{i}."
            )
        seen[name] = i


def active_plugin_names(cfg: DictConfig) -> list[str]:
    """Plugins listed under ``plugins:``, in the config's order, unless ``enabled: false``."""
    names = []
    for name, section in cfg.plugins.items():
        if section is None or section.get(PLUGIN_ENABLED_KEY, True):
            names.append(str(name))
    return names


def validate_plugin_config(cfg: DictConfig, name: str, config_class: type | None) -> Any:
    """Validate ``plugins.<name>`` against the plugin's dataclass; store the resolved section back
    into ``cfg`` (so it is logged) and return the dataclass instance for the plugin."""
    section = cfg.plugins.get(name)
    raw = OmegaConf.to_container(section, resolve=True) if section is not None else {}
    raw.pop(PLUGIN_ENABLED_KEY, None)
    if config_class is None:
        if raw:
            raise ConfigError(f"Plugin '{name}' takes no options, but plugins.{name} sets {sorted(raw)}.")
        return None
    check_keys(raw, config_class, f"plugins.{name}", f"the config of plugin '{name}'")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_class), raw)
        instance = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        full_key = getattr(exc, "full_key", None) or "?"
        raise ConfigError(f"Config key 'plugins.{name}.{full_key}' has the wrong type: {_first_line(exc)}") from None
    except (ValueError, TypeError) as exc:  # raised by the plugin's own __post_init__ checks
        raise ConfigError(f"Config of plugin '{name}' (plugins.{name}) is invalid: {exc}") from None
    with _open_struct(cfg):
        cfg.plugins[name] = OmegaConf.to_container(merged, resolve=True)
    return instance


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
