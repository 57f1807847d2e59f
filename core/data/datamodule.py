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
from litdata import CombinedStreamingDataset, StreamingDataLoader, StreamingDataset
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from litplug.data.batch import collate
from litplug.data.prepare import prepare_split
from litplug.data.sources import SourceSpec, source_name


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


def source_specs(cfg: DictConfig) -> list[SourceSpec]:
    return [OmegaConf.to_object(s) for s in cfg.data.sources]


class LitplugDataModule(L.LightningDataModule):
    def __init__(self, cfg: DictConfig, tokenizer: PreTrainedTokenizerBase, sources: list[SourceSpec],
                 cache_root: Path) -> None:
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.sources = sources
        self.cache_root = cache_root
        self.names = [source_name(s) for s in sources]
        self.train_names = [source_name(s) for s in sources if s.weight > 0]
        self.train_dirs: list[Path] = []
        self.val_dirs: list[Path] = []
        self._sizes: list[int] | None = None

    def prepare(self) -> None:
        """Tokenise and write every split that is not cached yet (runs before the run dir exists)."""
        d = self.cfg.data
        args = dict(tokenizer=self.tokenizer, seq_len=d.seq_len, seed=d.seed, cache_root=self.cache_root)
        self.train_dirs = [prepare_split(s, "train", **args) for s in self.sources if s.weight > 0]
        self.val_dirs = [prepare_split(s, "validation", **args) for s in self.sources]

    def train_sizes(self) -> list[int]:
        """Rows in each training source (for epoch counts)."""
        if self._sizes is None:
            self._sizes = [len(StreamingDataset(str(p))) for p in self.train_dirs]
        return self._sizes

    def train_weights(self) -> list[float]:
        weights = [s.weight for s in self.sources if s.weight > 0]
        return [w / sum(weights) for w in weights]

    def train_dataloader(self) -> StreamingDataLoader:
        d = self.cfg.data
        seed = self.cfg.run.seed
        datasets = [StreamingDataset(str(p), shuffle=d.shuffle, seed=seed + i, drop_last=True,
                                     transform=partial(tag_source, index=i))
                    for i, p in enumerate(self.train_dirs)]
        if len(datasets) == 1:
            dataset: Any = datasets[0]
        else:
            dataset = EpochSeededMixture(datasets, seed=seed, weights=self.train_weights(),
                                               iterate_over_all=False)
        loader = StreamingDataLoader(dataset, batch_size=d.batch_size, num_workers=d.num_workers,
                                     collate_fn=partial(collate, loss_on=d.loss_on), drop_last=True)
        return loader

    def val_dataloader(self) -> list[StreamingDataLoader]:
        d = self.cfg.data
        return [
            StreamingDataLoader(StreamingDataset(str(p), shuffle=False), batch_size=d.batch_size, num_workers=0,
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
        ds_state["num_samples_yielded"] -= unconsumed[int(index)]
        if "sample_in_epoch" in ds_state:
            ds_state["sample_in_epoch"] -= unconsumed[int(index)]
