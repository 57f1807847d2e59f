"""Tokenise a source's split once and write it as litdata shards with ``litdata.optimize``.

Every sample is one fixed-length row of ``seq_len + 1`` token ids, so a batch is a plain stack:
prompt/answer examples get a row each (padded), plain text is packed into consecutive rows.
Shards are cached under a key of everything that shapes them, and written to a temporary folder
that is renamed into place (or, on object storage, uploaded with ``index.json`` last), so an
interrupted preparation never leaves a half-written cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import weakref
from functools import partial
from pathlib import Path

import numpy as np
from litdata import optimize
from transformers import PreTrainedTokenizerBase

from litplug.data import storage
from litplug.data.sources import SourceSpec, fingerprint, read_examples, source_name
from litplug.data.storage import ShardDir
from litplug.data.tasks import Example
from litplug.errors import DataError

# Source settings that change how the mixture draws from the shards, not the shards themselves:
# left out of the cache key, so a sweep over mixing weights tokenises each source once.
MIXING_ONLY = frozenset({"weight"})

# Part of the cache key: bump it whenever the rows written for the same source and tokenizer change.
# 2: prompts and answers of space-leading tokenizers are joined without a lone space token.
ROW_FORMAT = 2

# (text before, answer) pairs for :func:`space_leads`: digits and words, since some tokenizers
# (Llama-3, Qwen) never join a space to a digit but do to a word.
_JOIN_PROBES = (("=", "4"), ("=", "a"), ("is", "the"), (":", "A"), ("?", "yes"), (",", "1"))
_SPACE_LEADS: weakref.WeakKeyDictionary[PreTrainedTokenizerBase, tuple[int, bool]] = weakref.WeakKeyDictionary()


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A digest of everything that changes the ids a text becomes: vocabulary, merges, normalizer and
    pre-tokenizer (a fast tokenizer's whole serialised state), added tokens, and which ids serve as
    BOS/EOS/PAD, which litplug writes into every row itself."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    state: list[object] = [type(tokenizer).__name__]
    if backend is not None:
        state.append(backend.to_str())
    else:
        state.append(sorted(tokenizer.get_vocab().items()))
    state.append(sorted((i, str(t)) for i, t in tokenizer.added_tokens_decoder.items()))
    state.append([tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id,
                  getattr(tokenizer, "add_prefix_space", None)])
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()[:16]


def start_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``[BOS]`` when the tokenizer has one; GPT-NeoX/Qwen-style tokenizers have none, and get nothing."""
    return [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]


def end_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """``[EOS]`` when the tokenizer has one, else nothing (no end-of-document marker)."""
    return [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]


def _encode(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _joins_shorter(tokenizer: PreTrainedTokenizerBase, before: str, answer: str) -> bool:
    """Whether ``before answer`` encoded whole starts with ``before``'s ids and is shorter than today's
    join, ``before + " "`` and ``answer`` encoded apart."""
    head, whole = _encode(tokenizer, before), _encode(tokenizer, f"{before} {answer}")
    apart = len(_encode(tokenizer, before + " ")) + len(_encode(tokenizer, answer))
    return whole[: len(head)] == head and len(whole) < apart


def space_leads(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer joins a space to the word after it (byte-level BPE's 'Ġ4', SentencePiece's
    '▁4'), so a prompt ending in a space would leave a lone space token that the natural encoding of the
    text never has. Decided per tokenizer, since generation does not know the answer; cached, as every
    row asks."""
    cached = _SPACE_LEADS.get(tokenizer)
    if cached is None or cached[0] != len(tokenizer):  # re-probe once tokens were added
        cached = (len(tokenizer), any(_joins_shorter(tokenizer, b, a) for b, a in _JOIN_PROBES))
        _SPACE_LEADS[tokenizer] = cached
    return cached[1]


def encode_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    """``[BOS] prompt`` as ids: the one encoding of a prompt, shared by training rows and generation. The
    space before the answer ends the prompt unless it leads the answer's first token (:func:`space_leads`)."""
    text = prompt if space_leads(tokenizer) or not prompt else prompt + " "
    return [*start_ids(tokenizer), *_encode(tokenizer, text)]


def encode_example(tokenizer: PreTrainedTokenizerBase, example: Example) -> tuple[list[int], int]:
    """``[BOS] prompt answer EOS`` as ids, and the number of ids before the answer starts. Where the space
    leads the answer, the answer's ids are those of the whole text after the prompt's, so the row reads as
    the text would naturally be tokenised."""
    prompt = encode_prompt(tokenizer, example.prompt)
    if example.prompt and example.answer and space_leads(tokenizer):
        own = prompt[len(start_ids(tokenizer)):]
        whole = _encode(tokenizer, f"{example.prompt} {example.answer}")
        answer = whole[len(own):] if whole[: len(own)] == own else _encode(tokenizer, " " + example.answer)
    else:
        answer = _encode(tokenizer, example.answer)
    return [*prompt, *answer, *end_ids(tokenizer)], len(prompt)


def build_rows(tokenizer: PreTrainedTokenizerBase, examples: list[Example], seq_len: int, name: str) -> np.ndarray:
    """Rows of [tokens (seq_len+1) | n_prompt | length] as one int32 array."""
    width = seq_len + 1
    pad = tokenizer.pad_token_id
    rows: list[list[int]] = []
    if examples and examples[0].prompt:
        if tokenizer.eos_token_id is None:
            raise DataError(f"data source '{name}' has prompt/answer examples, but the tokenizer has no EOS token, so "
                            "nothing could mark where an answer ends (generation would never stop). Give the "
                            "tokenizer one (tokenizer.add_special_tokens({'eos_token': ...}) and save_pretrained, "
                            "or a plugin's configure_tokenizer hook).")
        for ex in examples:
            ids, n_prompt = encode_example(tokenizer, ex)
            if len(ids) > width:
                raise DataError(f"data source '{name}': an example is {len(ids)} tokens but data.seq_len + 1 is "
                                f"{width}; raise data.seq_len to at least {len(ids) - 1}.")
            rows.append(ids + [pad] * (width - len(ids)) + [n_prompt, len(ids)])
    else:
        stream: list[int] = []
        for ex in examples:
            stream += [*start_ids(tokenizer), *tokenizer.encode(ex.answer, add_special_tokens=False),
                       *end_ids(tokenizer)]
        for start in range(0, len(stream) - width + 1, width):
            rows.append(stream[start : start + width] + [0, width])
    if not rows:
        raise DataError(f"data source '{name}' is too small: it yields no sequence of data.seq_len + 1 = {width} "
                        "tokens. Add data or lower data.seq_len.")
    return np.asarray(rows, dtype=np.int32)


def _sample(index: int, rows: np.ndarray) -> dict[str, object]:
    row = rows[index]
    return {"tokens": row[:-2], "n_prompt": int(row[-2]), "length": int(row[-1])}


def prepare_split(
    spec: SourceSpec, split: str, tokenizer: PreTrainedTokenizerBase, seq_len: int, seed: int, cache_root: ShardDir
) -> ShardDir:
    """The litdata folder for (source, split), writing it if it is not cached yet. ``cache_root`` is a local
    folder or an object-store URL (see :mod:`litplug.data.storage`)."""
    name = source_name(spec)
    shaping = {k: v for k, v in dataclasses.asdict(spec).items() if k not in MIXING_ONLY}
    parts = [ROW_FORMAT, shaping, split, seq_len, seed, tokenizer_fingerprint(tokenizer), fingerprint(spec)]
    key = json.dumps(parts, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = storage.join(cache_root, f"{name}-{split}-{digest}")
    if storage.has_index(target):
        return target
    rows = build_rows(tokenizer, read_examples(spec, split, seed), seq_len, name)
    if storage.is_remote(target):
        with tempfile.TemporaryDirectory(prefix=f"litplug-{name}-{split}-") as tmp:
            _optimize(rows, Path(tmp))
            storage.upload(Path(tmp), str(target))
        return target
    target = Path(target)
    cache_root = Path(cache_root)
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=cache_root))
    try:
        _optimize(rows, tmp)
        os.replace(tmp, target)
    except OSError:
        if not (target / "index.json").is_file():  # not a concurrent writer finishing first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _optimize(rows: np.ndarray, out: Path) -> None:
    optimize(fn=partial(_sample, rows=rows), inputs=list(range(len(rows))), output_dir=str(out),
             chunk_bytes="32MB", num_workers=1, reorder_files=False, verbose=False, mode="overwrite",
             start_method="fork")
