"""Tokenizers and HF causal LMs that need no download: built from a config, or read from a local
directory. Everything returned is a plain `transformers` object, so export is `save_pretrained`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from litplug.errors import ConfigError

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}


def _wrap(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, **SPECIAL_TOKENS)


def byte_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (4 specials + 256 bytes): reads any text, needs no download."""
    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS.values(), *byte_chars])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return _wrap(tok)


def word_tokenizer(words: Sequence[str]) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer over a synthetic task's vocabulary (one id per word)."""
    vocab: dict[str, int] = {}
    for word in [*SPECIAL_TOKENS.values(), *words]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return _wrap(tok)


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """A local HF tokenizer directory; gives it a pad token if it has none (batches need one)."""
    if not Path(path).is_dir():
        raise ConfigError(f"data.tokenizer: '{path}' is not a local tokenizer directory. Use 'byte', "
                          "'task', or the path of a directory written by save_pretrained.")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


def build_model(model_cfg: DictConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Build the causal LM named by ``model``: a local HF directory, or random init from sizes."""
    if model_cfg.path:
        path = Path(model_cfg.path)
        if not path.is_dir():
            raise ConfigError(f"model.path: '{path}' is not a directory. Give a local HF model directory "
                              "(e.g. a litplug export) or leave model.path empty to build from a config.")
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, attn_implementation=model_cfg.attn_implementation,
            dtype=torch.float32,
        )
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return model.train()  # from_pretrained returns eval mode; training needs train mode (dropout etc.)
    extra = OmegaConf.to_container(model_cfg.extra, resolve=True) or {}
    try:
        config = AutoConfig.for_model(
            model_cfg.architecture,
            vocab_size=len(tokenizer),
            hidden_size=model_cfg.hidden_size,
            num_hidden_layers=model_cfg.num_hidden_layers,
            num_attention_heads=model_cfg.num_attention_heads,
            num_key_value_heads=model_cfg.num_key_value_heads or model_cfg.num_attention_heads,
            intermediate_size=model_cfg.intermediate_size,
            max_position_embeddings=model_cfg.max_position_embeddings,
            tie_word_embeddings=model_cfg.tie_word_embeddings,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **extra,
        )
    except ValueError as exc:
        raise ConfigError(f"model.architecture: {exc}") from None
    return AutoModelForCausalLM.from_config(
        config, attn_implementation=model_cfg.attn_implementation, dtype=torch.float32
    )
