"""Right-to-left sequences: training the FSP-RevLM teacher, and reading its summary of the future.

A batch row holds the sequence s[0 .. L-1] as ``input_ids[:L]`` plus, for a row filled to the brim
(L = T+1), its last token in ``labels[:, -1]``; ``attention_mask`` marks ``positions < L`` (capped at
T). Reversing a row mirrors that layout: the reversed sequence r = s[L-1], ..., s[0] is written the
same way, and the pair (r[j] -> r[j+1]) is trained exactly when the forward pair it mirrors,
(s[i] -> s[i+1]) with i = L-2-j, is. A teacher trained on such batches is an ordinary causal LM
that reads right to left.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from litplug.api import ConfigError

IGNORE = -100
DIRECTION_KEY = "litplug_fsp_direction"  # written into an exported reverse LM's config.json


def sequence_lengths(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """L per row: the real tokens, including a brim-full row's last token that only ``labels`` holds."""
    return batch["attention_mask"].sum(dim=1) + (batch["labels"][:, -1] != IGNORE).long()


def _mirror_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """[B, width]: position p reads L-1-p for p < L and stays put in the padding."""
    positions = torch.arange(width, device=lengths.device).unsqueeze(0)
    return torch.where(positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions)


def reverse_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A new batch (same keys and layout) with every row's sequence reversed."""
    input_ids, labels = batch["input_ids"], batch["labels"]
    width = input_ids.shape[1]
    lengths = sequence_lengths(batch)
    tokens = torch.cat([input_ids, labels[:, -1:].clamp(min=0)], dim=1)  # s, with the brim token
    reversed_tokens = tokens.gather(1, _mirror_index(lengths, width + 1))
    pair = _mirror_index(lengths - 1, width)  # reversed pair j mirrors forward pair L-2-j
    has_pair = torch.arange(width, device=labels.device).unsqueeze(0) < (lengths - 1).unsqueeze(1)
    trained = (labels != IGNORE).gather(1, pair) & has_pair
    out = dict(batch)
    out["input_ids"] = reversed_tokens[:, :width].contiguous()
    out["labels"] = reversed_tokens[:, 1:].masked_fill(~trained, IGNORE).contiguous()
    out["answer_mask"] = batch["answer_mask"].gather(1, pair) & has_pair
    return out


def future_summary_targets(teacher_hidden: torch.Tensor, lengths: torch.Tensor,
                           labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's summary of x[t+2 ..] for each forward position t, and where it exists.

    ``teacher_hidden[:, j]`` (run on the reversed rows) has read s[L-1-j .. L-1], so the summary of
    x[t+2 ..] is at j = L-3-t; it exists for t <= L-3. Only positions with an NTP target are used.
    """
    width = labels.shape[1]
    positions = torch.arange(width, device=labels.device).unsqueeze(0)
    source = (lengths.unsqueeze(1) - 3 - positions).clamp(min=0)
    targets = teacher_hidden.gather(1, source.unsqueeze(-1).expand(-1, -1, teacher_hidden.shape[-1]))
    valid = (positions <= lengths.unsqueeze(1) - 3) & (labels != IGNORE)
    return targets, valid


def load_teacher(path: str, tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> PreTrainedModel:
    """The frozen reverse LM, after checking it reads the same tokens as the run's model."""
    where = Path(path)
    hint = "Train the reverse LM with this run's data and tokenizer (plugins.fsp.objective=reverse_lm)."
    try:
        teacher = AutoModelForCausalLM.from_pretrained(where, local_files_only=True, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"plugins.fsp.revlm_path '{where}' could not be loaded as an HF causal LM: {exc}") from None
    if teacher.get_input_embeddings().num_embeddings != vocab_size:
        raise ConfigError(
            f"plugins.fsp.revlm_path '{where}' has a vocabulary of {teacher.get_input_embeddings().num_embeddings} "
            f"tokens but this run's model has {vocab_size}. {hint}"
        )
    if any(where.glob("tokenizer*.json")):
        theirs = AutoTokenizer.from_pretrained(where, local_files_only=True).get_vocab()
        if theirs != tokenizer.get_vocab():
            raise ConfigError(f"plugins.fsp.revlm_path '{where}' was trained with a different tokenizer "
                              f"(its token ids differ from this run's). {hint}")
    if getattr(teacher.config, DIRECTION_KEY, None) != "right_to_left":
        print(f"litplug-fsp: warning: '{where}' is not marked as a reverse LM trained with "
              "plugins.fsp.objective=reverse_lm; using it as the FSP-RevLM teacher anyway.", file=sys.stderr)
    teacher.requires_grad_(False)
    return teacher.eval()
