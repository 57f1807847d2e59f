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
    """A local HF tokenizer directory, with the special-token rule of :func:`ensure_pad_token`."""
    if not Path(path).is_dir():
        raise ConfigError(f"data.tokenizer: '{path}' is not a local tokenizer directory. Use 'byte', "
                          "'task', or the path of a directory written by save_pretrained.")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    ensure_pad_token(tokenizer)
    return tokenizer


def ensure_pad_token(tokenizer: PreTrainedTokenizerBase) -> None:
    """Batches need a padding id. Padded positions never carry a loss (rows know their length) and
    generation masks them, so any token serves: the tokenizer's own PAD, else EOS, UNK, BOS, else id 0.

    BOS and EOS are used only where the tokenizer has them (:mod:`litplug.data.prepare`): no BOS, no
    start marker; no EOS, no end marker (text is packed without a separator; prompt/answer tasks,
    which need to know where an answer stops, are refused at start-up).
    """
    if tokenizer.pad_token_id is not None:
        return
    for candidate in (tokenizer.eos_token, tokenizer.unk_token, tokenizer.bos_token):
        if candidate is not None:
            tokenizer.pad_token = candidate
            return
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)


def attn_implementation(model_cfg: DictConfig) -> str | None:
    """``auto`` lets transformers pick what the architecture supports (SDPA, else eager)."""
    value = model_cfg.attn_implementation
    return None if value in (None, "", "auto") else str(value)


def _load_error(exc: Exception, model_cfg: DictConfig) -> ConfigError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "attention implementation" in text or "attn_implementation" in text:
        return ConfigError(f"model.attn_implementation: '{model_cfg.attn_implementation}' does not work with this "
                           f"model ({text[:300]}). Use model.attn_implementation=auto (what the model supports) "
                           "or eager.")
    where = f"model.path '{model_cfg.path}'" if model_cfg.path else f"model.architecture '{model_cfg.architecture}'"
    return ConfigError(f"{where}: the model cannot be built ({type(exc).__name__}: {text[:300]}).")


def build_model(model_cfg: DictConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """Build the causal LM named by ``model``: a local HF directory, or random init from sizes."""
    if model_cfg.path:
        path = Path(model_cfg.path)
        if not path.is_dir():
            raise ConfigError(f"model.path: '{path}' is not a directory. Give a local HF model directory "
                              "(e.g. a litplug export) or leave model.path empty to build from a config.")
        try:
            model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, attn_implementation=attn_implementation(model_cfg),
                dtype=torch.float32,
            )
        except (ValueError, OSError, KeyError, TypeError) as exc:
            raise _load_error(exc, model_cfg) from None
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
    except Exception as exc:  # unknown model_type, or the config's own validation of these sizes
        raise ConfigError(f"model.architecture '{model_cfg.architecture}' with these sizes is not a valid "
                          f"config: {type(exc).__name__}: {str(exc).strip()[:400]}") from None
    try:
        return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation(model_cfg),
                                                dtype=torch.float32)
    except Exception as exc:  # transformers' config validation raises many types; all mean "this config"
        raise _load_error(exc, model_cfg) from None
