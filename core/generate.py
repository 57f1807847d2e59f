"""Generation that plugins can shape: prompts pass through ``prepare_generation`` and decoding
through the plugins' ``logits_processors`` (e.g. appended pause tokens that are never emitted)."""

from __future__ import annotations

import pluggy
import torch
from transformers import LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from litplug.data.prepare import encode_prompt


def hooks_of(pm: pluggy.PluginManager | pluggy.HookRelay) -> pluggy.HookRelay:
    """A plugin manager's hooks, or the hooks themselves (``StepContext.hooks``)."""
    return pm.hook if isinstance(pm, pluggy.PluginManager) else pm


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: list[str],
                   pm: pluggy.PluginManager | pluggy.HookRelay) -> list[list[int]]:
    """``[BOS] prompt`` ids exactly as training saw them, then the plugins' changes (``pm``: the run's
    plugin manager, or ``StepContext.hooks``)."""
    ids = [encode_prompt(tokenizer, p) for p in prompts]
    hooks_of(pm).prepare_generation(prompts=ids, tokenizer=tokenizer)
    return ids


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    pm: pluggy.PluginManager | pluggy.HookRelay,
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    batch_size: int = 32,
    seed: int = 0,
) -> list[list[str]]:
    """``num_samples`` completions per prompt (greedy when 1), decoded up to the first EOS."""
    model.eval()
    device = next(model.parameters()).device
    groups = hooks_of(pm).logits_processors(tokenizer=tokenizer)
    processors = LogitsProcessorList([p for group in groups for p in group or []])
    encoded = encode_prompts(tokenizer, prompts, pm)
    generator_seed = torch.Generator().manual_seed(seed)
    outputs: list[list[str]] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        width = max(len(ids) for ids in chunk)
        input_ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, ids in enumerate(chunk):  # left padding: every prompt ends where generation starts
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator_seed)))
        out = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention.to(device), max_new_tokens=max_new_tokens,
            do_sample=num_samples > 1, temperature=temperature if num_samples > 1 else None,
            top_k=None, top_p=None, num_return_sequences=num_samples, logits_processor=processors,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        new = out[:, width:].cpu()
        texts = [_decode(tokenizer, row) for row in new]
        outputs += [texts[i : i + num_samples] for i in range(0, len(texts), num_samples)]
    return outputs


def _decode(tokenizer: PreTrainedTokenizerBase, ids: torch.Tensor) -> str:
    ids = ids.tolist()
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return tokenizer.decode(ids, skip_special_tokens=True).strip()
