"""The SPT mixture: the domain source gets weight delta, the general sources share 1 - delta.

Mixing itself is the core's: litdata's ``CombinedStreamingDataset`` draws the source of every
training sequence from the normalised weights with a seeded RNG, and a source with weight 0 is not
trained on but still validated. When any source runs out, litdata ends the epoch and restarts the
whole mixture (the core reseeds its draws every epoch), so a small domain split would cut every
epoch short and restart the general sources too. The synthetic ``domain`` task cycles its finite
pool of documents to fill ``num_train``; the plugin makes that split long enough for the whole run,
so the domain is repeated (each pass reshuffled) without the mixture ever restarting.
"""

from __future__ import annotations

import math

import torch
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from litplug.api import ConfigError, DataError, SourceSpec, TaskError, get_task, source_name
from litplug_spt.config import SPTConfig


def find_domain(sources: list[SourceSpec], domain: str) -> int:
    """Index of the domain source; a ConfigError listing the names when it is missing."""
    names = [source_name(s) for s in sources]
    if domain not in names:
        raise ConfigError(f"plugins.spt.domain is '{domain}', but data.sources has no source of that name "
                          f"(sources: {', '.join(names) or 'none'}). Set plugins.spt.domain to one of them, "
                          "or give the domain source `name: <domain>`.")
    return names.index(domain)


def domain_task(spec: SourceSpec) -> object | None:
    """The synthetic ``domain`` task behind a source (it has a finite pool of documents), else None."""
    if spec.task != "domain":
        return None
    try:
        return get_task("domain", dict(spec.params))
    except TaskError as exc:
        raise DataError(f"data source '{source_name(spec)}': {exc}") from None


def check_domain_not_empty(spec: SourceSpec, need_validation: bool) -> None:
    """An empty domain would train on nothing (or stop early on nothing): name the key that empties it."""
    name = source_name(spec)
    if spec.task and spec.num_train < 1:
        raise DataError(f"The SPT domain source '{name}' (data.sources, plugins.spt.domain) is empty: its "
                        f"num_train is {spec.num_train}. Give it at least one training example.")
    if need_validation and spec.task and spec.num_validation < 1:
        raise DataError(f"plugins.spt.early_stopping needs held-out domain data, but the domain source '{name}' "
                        f"has num_validation = {spec.num_validation}.")
    if need_validation and spec.path and not 0.0 < spec.validation_fraction < 1.0:
        raise DataError(f"plugins.spt.early_stopping needs held-out domain data, but the domain source '{name}' "
                        f"has validation_fraction = {spec.validation_fraction}.")


def world_size(config: DictConfig) -> int:
    """Processes that each draw a batch per step (an upper estimate before the Trainer exists)."""
    t = config.trainer
    devices = t.devices
    if isinstance(devices, int) and devices > 0:
        n = devices
    elif isinstance(devices, str) and devices.isdigit() and int(devices) > 0:
        n = int(devices)
    elif isinstance(devices, (list, tuple)) or hasattr(devices, "__len__") and not isinstance(devices, str):
        n = len(devices)
    else:  # "auto" / -1: every visible GPU, or one CPU process
        n = max(1, torch.cuda.device_count()) if t.accelerator != "cpu" else 1
    return n * int(t.num_nodes)


def rows_per_step(config: DictConfig, world: int | None = None) -> int:
    """Training sequences drawn per optimizer step, over all processes."""
    world = world_size(config) if world is None else world
    return int(config.data.batch_size) * int(config.trainer.accumulate_grad_batches) * world


def documents_for_run(spec: SourceSpec, delta: float, config: DictConfig) -> int:
    """How many ``domain`` documents the run draws at share ``delta``, with a margin: each document
    is at least ``length + 2`` tokens (bos, eos), and litdata may drop a batch per pass."""
    task = domain_task(spec)
    rows = config.trainer.max_steps * rows_per_step(config) * delta
    rows = rows * 1.1 + 2 * rows_per_step(config)
    tokens_per_document = int(task.length) + 2  # type: ignore[attr-defined]
    return math.ceil(rows * (config.data.seq_len + 1) / tokens_per_document)


def distinct_rows(spec: SourceSpec, split_rows: int, tokenizer: PreTrainedTokenizerBase, seq_len: int,
                  seed: int) -> float:
    """|D| in training rows of ``seq_len + 1`` stored tokens: the distinct data the domain holds.

    A ``domain`` task's split cycles its pool, so its distinct documents are counted and tokenised
    (each packed as ``<bos> text <eos>``); any other source has no repeats within its split.
    """
    task = domain_task(spec)
    if task is None:
        return float(split_rows)
    documents = set(task.examples("train", spec.num_train, seed))  # type: ignore[attr-defined]
    tokens = sum(len(tokenizer.encode(d.answer, add_special_tokens=False)) + 2 for d in documents)
    return tokens / (seq_len + 1)


def apply_mixture(sources: list[SourceSpec], spt: SPTConfig, config: DictConfig) -> int:
    """Reweight ``sources`` in place for domain share ``spt.delta``; returns the domain's index.

    General sources keep their relative weights and together get ``1 - delta``; a general source
    configured with weight 0 stays at 0 (validated only). At ``delta = 0`` the domain gets weight 0 and
    the general weights are not touched at all, so the training stream is bit-identical to the same
    config without the plugin and with the domain's weight set to 0.
    """
    index = find_domain(sources, spt.domain)
    domain = sources[index]
    check_domain_not_empty(domain, spt.early_stopping)
    general = [s for i, s in enumerate(sources) if i != index]
    general_total = sum(s.weight for s in general)
    if spt.delta < 1.0 and general_total <= 0:
        names = ", ".join(source_name(s) for s in general) or "none"
        raise ConfigError(f"plugins.spt.delta is {spt.delta} < 1, so general data must fill {1 - spt.delta:.3g} of "
                          f"the mixture, but no other source has a positive weight (general sources: {names}). "
                          "Add a general source with weight > 0, or set plugins.spt.delta=1 to train on the "
                          "domain only.")
    if spt.delta > 0:  # at delta = 0 the general weights are left untouched, float for float
        for s in general:
            s.weight = s.weight / general_total * (1.0 - spt.delta) if general_total > 0 else 0.0
    domain.weight = spt.delta
    if spt.domain_covers_run and spt.delta > 0 and domain_task(domain) is not None:
        domain.num_train = max(domain.num_train, documents_for_run(domain, spt.delta, config))
    return index


def record_effective_sources(config: DictConfig, sources: list[SourceSpec]) -> None:
    """Write the effective weights and split sizes back into the run config, so config.yaml and the
    MLflow params show what was trained on (re-applying the plugin to it changes nothing)."""
    written = [source_name(OmegaConf.to_object(node)) for node in config.data.sources]
    if written != [source_name(s) for s in sources]:
        return  # another plugin added or removed sources: leave the user's list as written
    for node, spec in zip(config.data.sources, sources):
        node.weight = float(spec.weight)
        node.num_train = int(spec.num_train)
