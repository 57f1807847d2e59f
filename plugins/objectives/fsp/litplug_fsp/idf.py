"""Per-token weights for FSP-BCE from the training data: smoothed inverse document frequency.

A "document" is one training row, exactly as the run tokenises it (``build_rows``), so the weights
see what the loss sees. idf_v = ln((1 + N) / (1 + df_v)) + 1 (scikit-learn's smooth idf), rescaled
to mean 1 over the vocabulary so the loss keeps the scale of uniform weights.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from transformers import PreTrainedTokenizerBase

from litplug.api import build_rows, read_examples, source_name


def row_document_frequency(rows: np.ndarray, vocab_size: int) -> np.ndarray:
    """How many rows contain each token; ``rows`` as ``build_rows`` writes them (tokens | n_prompt | length)."""
    df = np.zeros(vocab_size, dtype=np.int64)
    for row in rows:
        df[np.unique(row[: row[-1]])] += 1
    return df


def idf_weights(config: DictConfig, tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> torch.Tensor:
    """[V] float32 weights with mean 1, from every training source of the run."""
    df = np.zeros(vocab_size, dtype=np.int64)
    n_rows = 0
    for spec in (OmegaConf.to_object(s) for s in config.data.sources):
        if spec.weight <= 0:
            continue
        rows = build_rows(tokenizer, read_examples(spec, "train", config.data.seed), config.data.seq_len,
                          source_name(spec))
        df += row_document_frequency(rows, vocab_size)
        n_rows += len(rows)
    idf = np.log((1 + n_rows) / (1 + df)) + 1.0
    return torch.from_numpy(idf / idf.mean()).float()
