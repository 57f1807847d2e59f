"""The LightningDataModule: prepared litdata shards, streamed and mixed by litdata.

Training streams a weighted mixture of the sources (``CombinedStreamingDataset``); validation keeps
one loader per source so each source's loss is logged under its own name. The training loader is a
stateful ``StreamingDataLoader``: Lightning's fit loop saves its position in the checkpoint and
restores it on resume; :func:`discount_prefetched_batch` makes that position exact for mixtures.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import torch
from litdata import CombinedStreamingDataset, StreamingDataLoader
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from litplug.data.batch import collate
from litplug.data.prepare import prepare_split
from litplug.data.sources import SourceSpec, source_name
from litplug.data.storage import ShardDir, check_streamable, is_remote, open_shards
from litplug.errors import DataError


def tag_source(item: dict[str, Any], index: int) -> dict[str, Any]:
    """Mark each training sample with its source's index, so the mixture can be measured."""
    item["source"] = index
    return item


class EpochSeededMixture(CombinedStreamingDataset):
    """A weighted mixture whose draw order differs from epoch to epoch.

    litdata seeds the mixture's source draws with the same seed at every epoch, so each epoch
    would interleave the sources in the same pattern; here the seed is ``seed + epoch``. The
    loader sets the epoch before iterating, also when resuming, so a resumed run replays the
    same draws.
    """

    def __iter__(self) -> Any:
        seed = self._seed
        self._seed = seed + self._current_epoch
        try:
            return super().__iter__()
        finally:
            self._seed = seed


class ResumableLoader(StreamingDataLoader):
    """A ``StreamingDataLoader`` whose resume position applies to the resumed epoch only.

    litdata clears its ``restore`` flag when an epoch's iterator runs to its end. For a source of
    known length Lightning stops after the epoch's last batch without exhausting the iterator, so
    the flag stayed set and the next epoch "resumed" again from the checkpoint's position: it replayed
    the tail of the previous epoch (a single-source resume across an epoch boundary was not
    bit-exact). Here a restore set by :meth:`load_state_dict` is honoured by the next iteration only.
    """

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        super().load_state_dict(obj)
        self._fresh_restore = self.restore

    def __iter__(self) -> Any:
        if not getattr(self, "_fresh_restore", False):
            self.restore = False  # a flag left over from an epoch that ended without StopIteration
        self._fresh_restore = False
        return super().__iter__()


def source_specs(cfg: DictConfig) -> list[SourceSpec]:
    return [_with_defaults(OmegaConf.to_object(s), cfg) for s in cfg.data.sources]


def _with_defaults(spec: SourceSpec, cfg: DictConfig) -> SourceSpec:
    """Fill the per-source settings that default to a data-level one (``data.on_bad_rows``)."""
    if spec.on_bad_rows is None:
        spec.on_bad_rows = cfg.data.on_bad_rows
    return spec


def check_unique_names(sources: list[SourceSpec]) -> None:
    """Sources log under ``val/<name>/loss``, so two with one name would collide at the first
    validation. The config's sources are checked by load_config; this also covers the sources a
    plugin's ``data_sources`` hook adds."""
    seen: dict[str, int] = {}
    for i, spec in enumerate(sources):
        name = source_name(spec)
        if name in seen:
            raise DataError(f"Data sources {seen[name]} and {i} (after the plugins' data_sources hooks) are both "
                            f"named '{name}', so their metrics would collide (e.g. val/{name}/loss). Give one of "
                            f"them its own `name` (e.g. name: {name}_{i}).")
        seen[name] = i


class LitplugDataModule(L.LightningDataModule):
    def __init__(self, cfg: DictConfig, tokenizer: PreTrainedTokenizerBase, sources: list[SourceSpec],
                 cache_root: ShardDir) -> None:
        super().__init__()
        if is_remote(cache_root):
            check_streamable(str(cache_root))
        check_unique_names(sources)
        for spec in sources:
            _with_defaults(spec, cfg)  # sources a plugin's data_sources hook added
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.sources = sources
        self.cache_root = cache_root
        self.names = [source_name(s) for s in sources]
        self.train_names = [source_name(s) for s in sources if s.weight > 0]
        self.train_dirs: list[ShardDir] = []
        self.val_dirs: list[ShardDir] = []
        self._sizes: list[int] | None = None

    def prepare(self) -> None:
        """Tokenise and write every split that is not cached yet (runs before the run dir exists)."""
        d = self.cfg.data
        args = dict(tokenizer=self.tokenizer, seq_len=d.seq_len, seed=d.seed, cache_root=self.cache_root)
        self.train_dirs = [prepare_split(s, "train", **args) for s in self.sources if s.weight > 0]
        self.val_dirs = [prepare_split(s, "validation", **args) for s in self.sources]
        self.check_batch_size()

    def check_batch_size(self) -> None:
        """The training loader drops an incomplete last batch, and a mixture ends its epoch when its
        first source runs out: with fewer rows than one batch before that, every epoch is empty and
        the run would train 0 steps (and exit as if it had succeeded)."""
        batch_size = self.cfg.data.batch_size
        sizes, weights = self.train_sizes(), self.train_weights()
        # the expected rows of an epoch: until the source with the fewest rows per share of draws runs out
        rows, name, share, size = min((n / w, name, w, n) for n, w, name in zip(sizes, weights, self.train_names))
        if rows >= batch_size:
            return
        rows_per = f"{size} training rows (sequences of data.seq_len + 1 = {self.cfg.data.seq_len + 1} tokens)"
        if len(sizes) == 1:
            raise DataError(f"data source '{name}' has {rows_per}, fewer than data.batch_size = {batch_size}; the "
                            "training loader drops incomplete batches, so the run would train 0 steps. Lower "
                            f"data.batch_size to at most {size}, or add data.")
        raise DataError(f"data source '{name}' has {rows_per} and {share:.0%} of the training mixture's draws, so "
                        f"the mixture runs out of it after about {rows:.0f} rows per epoch, fewer than "
                        f"data.batch_size = {batch_size}; every epoch would be empty and the run would train 0 "
                        f"steps. Lower data.batch_size, lower the source's weight, or add data to it.")

    def train_sizes(self) -> list[int]:
        """Rows in each training source (for epoch counts)."""
        if self._sizes is None:
            self._sizes = [len(open_shards(p, self.cfg)) for p in self.train_dirs]
        return self._sizes

    def recorded_dirs(self) -> list[Path]:
        """Each training source's folder as litdata records it (``input_dir_path``) in the loader state:
        the shard folder, or for shards on object storage the local folder its chunks download to."""
        return [Path(open_shards(p, self.cfg).input_dir.path) if is_remote(p) else Path(p) for p in self.train_dirs]

    def train_weights(self) -> list[float]:
        weights = [s.weight for s in self.sources if s.weight > 0]
        return [w / sum(weights) for w in weights]

    def train_dataloader(self) -> ResumableLoader:
        d = self.cfg.data
        seed = self.cfg.run.seed
        datasets = [open_shards(p, self.cfg, shuffle=d.shuffle, seed=seed + i, drop_last=True,
                                transform=partial(tag_source, index=i))
                    for i, p in enumerate(self.train_dirs)]
        if len(datasets) == 1:
            dataset: Any = datasets[0]
        else:
            dataset = EpochSeededMixture(datasets, seed=seed, weights=self.train_weights(),
                                               iterate_over_all=False)
        loader = ResumableLoader(dataset, batch_size=d.batch_size, num_workers=d.num_workers,
                                 collate_fn=partial(collate, loss_on=d.loss_on), drop_last=True)
        return loader

    def val_dataloader(self) -> list[StreamingDataLoader]:
        d = self.cfg.data
        return [
            StreamingDataLoader(open_shards(p, self.cfg, shuffle=False), batch_size=d.batch_size, num_workers=0,
                                collate_fn=partial(collate, loss_on=d.loss_on))
            for p in self.val_dirs
        ]


def discount_prefetched_batch(checkpoint: dict[str, Any], trainer: L.Trainer) -> None:
    """Make a mixture loader's saved position count only the batches training consumed.

    A ``CombinedStreamingDataset`` has no length, so Lightning's fetcher reads one batch ahead to
    detect the end of the epoch, and the loader state it saves counts that unconsumed batch: a
    resumed run would skip it. The prefetched batch carries each row's source, so subtract it.
    (Relies on Lightning's private ``_data_fetcher.batches``; tests/test_resume.py guards this.)
    """
    fetcher = getattr(trainer.fit_loop, "_data_fetcher", None)
    pending = getattr(fetcher, "batches", None)
    states = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {}).get("combined_loader")
    batch = pending[0][0] if pending and isinstance(pending[0], tuple) else (pending or [None])[0]
    if not isinstance(batch, dict) or not states or "source" not in batch:
        return
    state = states[0]
    yielded = state.get("num_samples_yielded")
    if not isinstance(yielded, dict) or "dataset" not in state:
        return  # a single dataset: its length is known, nothing was prefetched
    unconsumed = torch.bincount(batch["source"].cpu(), minlength=len(state["dataset"])).tolist()
    for worker, counts in yielded.items():
        yielded[worker] = [c - u for c, u in zip(counts, unconsumed)]
    for index, ds_state in state["dataset"].items():
        if not unconsumed[int(index)]:
            continue
        ds_state["num_samples_yielded"] -= unconsumed[int(index)]
        if "sample_in_epoch" in ds_state:
            ds_state["sample_in_epoch"] -= unconsumed[int(index)]
        # The prefetched rows may have been a source's last of the epoch: litdata then advanced that source's
        # epoch (ahead of the loader's). Without them the epoch is not over, so its counter goes back too;
        # else a resumed run would finish the epoch with the next epoch's shuffle.
        epoch, own = state.get("current_epoch"), ds_state.get("current_epoch")
        if isinstance(epoch, int) and isinstance(own, int) and own > epoch:
            ds_state["current_epoch"] = epoch
