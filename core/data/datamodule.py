"""The LightningDataModule: prepared litdata shards, streamed and mixed by litdata.

Training streams a weighted mixture of the sources (``CombinedStreamingDataset``); validation keeps
one loader per source so each source's loss is logged under its own name. The training loader's
position is part of the checkpoint so a resumed run sees exactly the batches an uninterrupted run
would have seen.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
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
        self._train_loader: StreamingDataLoader | None = None
        self._pending_state: dict[str, Any] | None = None
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
            dataset = CombinedStreamingDataset(datasets, seed=seed, weights=self.train_weights(),
                                               iterate_over_all=False)
        loader = StreamingDataLoader(dataset, batch_size=d.batch_size, num_workers=d.num_workers,
                                     collate_fn=partial(collate, loss_on=d.loss_on), drop_last=True)
        if self._pending_state is not None:
            loader.load_state_dict(self._pending_state)
            self._pending_state = None
        self._train_loader = loader
        return loader

    def val_dataloader(self) -> list[StreamingDataLoader]:
        d = self.cfg.data
        return [
            StreamingDataLoader(StreamingDataset(str(p), shuffle=False), batch_size=d.batch_size, num_workers=0,
                                collate_fn=partial(collate, loss_on=d.loss_on))
            for p in self.val_dirs
        ]

    def state_dict(self) -> dict[str, Any]:
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending_state = state_dict.get("train_loader")
