"""The SPT mixture: the domain source gets weight delta, the general sources share 1 - delta.

Mixing itself is the core's (litdata ``CombinedStreamingDataset`` draws the source of every training
sequence from the normalised weights with a seeded RNG, and a source with weight 0 is not trained on
but still validated). Domain repetition comes from the loader cycling through the domain split.
"""

from __future__ import annotations

from omegaconf import DictConfig

from litplug.data.sources import SourceSpec, source_name
from litplug.data.tasks import TaskError, get_task
from litplug.errors import ConfigError, DataError

from litplug_spt.config import SPTConfig


def find_domain(sources: list[SourceSpec], domain: str) -> int:
    """Index of the domain source; a ConfigError listing the names when it is missing."""
    names = [source_name(s) for s in sources]
    if domain not in names:
        raise ConfigError(f"plugins.spt.domain is '{domain}', but data.sources has no source of that name "
                          f"(sources: {', '.join(names) or 'none'}). Set plugins.spt.domain to one of them, "
                          "or give the domain source `name: <domain>`.")
    return names.index(domain)


def domain_pool_size(spec: SourceSpec) -> int | None:
    """Distinct training documents of a synthetic ``domain`` task (its finite pool), else None."""
    if spec.task != "domain":
        return None
    try:
        return int(get_task("domain", dict(spec.params)).num_documents)
    except TaskError as exc:
        raise DataError(f"data source '{source_name(spec)}': {exc}") from None


def check_domain_not_empty(spec: SourceSpec, need_validation: bool) -> None:
    """An empty domain would train nothing (or stop early on nothing): say which key makes it empty."""
    name = source_name(spec)
    if spec.task and spec.num_train < 1:
        raise DataError(f"The SPT domain source '{name}' is empty: its num_train is {spec.num_train}. "
                        "Give it at least one training example.")
    if need_validation and spec.task and spec.num_validation < 1:
        raise DataError(f"plugins.spt.early_stopping needs held-out domain data, but the domain source '{name}' "
                        f"has num_validation = {spec.num_validation}.")
    if spec.path and not 0.0 < spec.validation_fraction < 1.0 and need_validation:
        raise DataError(f"plugins.spt.early_stopping needs held-out domain data, but the domain source '{name}' "
                        f"has validation_fraction = {spec.validation_fraction}.")


def apply_mixture(sources: list[SourceSpec], spt: SPTConfig) -> int:
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
    pool = domain_pool_size(domain)
    if spt.domain_pool_once and pool is not None and domain.num_train > pool:
        # The `domain` task pre-repeats its pool to fill num_train; SPT controls repetition itself,
        # so its split holds each document once and epochs are counted over distinct data.
        domain.num_train = pool
    return index


def record_effective_sources(config: DictConfig, sources: list[SourceSpec]) -> None:
    """Write the effective weights / split sizes back into the run config, so config.yaml and the
    MLflow params show what was trained on (and re-applying the plugin is idempotent)."""
    for node, spec in zip(config.data.sources, sources):
        node.weight = float(spec.weight)
        node.num_train = int(spec.num_train)
