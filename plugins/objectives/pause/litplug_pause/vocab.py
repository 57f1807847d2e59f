"""The pause token in the tokenizer and its row in the model's embedding (and LM head)."""

from __future__ import annotations

from tokenizers import AddedToken
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from litplug.api import ConfigError

_NAMED_SPECIALS = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token", "mask_token")


def _is_added_special(tokenizer: PreTrainedTokenizerBase, token: str) -> bool:
    """True for a token added as special (e.g. the pause of a pause-pretrained export), not a named one."""
    named = {str(getattr(tokenizer, name, None)) for name in _NAMED_SPECIALS}
    added = tokenizer.added_tokens_decoder.values()
    return token not in named and any(str(t) == token and t.special for t in added)


def add_pause_token(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """Add ``token`` as one special token and return its id.

    A tokenizer exported by a pause run already holds it as an added special token: that is reused.
    A string that is an ordinary (or a named special) token would share an embedding with real text,
    which the method forbids (never reuse "." or "#"), so it is a ConfigError.
    """
    vocab = tokenizer.get_vocab()
    if token in vocab:
        if not _is_added_special(tokenizer, token):
            raise ConfigError(
                f"plugins.pause.token '{token}' already exists in the tokenizer's vocabulary (id {vocab[token]}, "
                f"data.tokenizer={getattr(tokenizer, 'name_or_path', '') or 'built-in'}). A pause needs a new token "
                "with its own embedding, never an ordinary one; choose another string, e.g. "
                "plugins.pause.token='<pause>'."
            )
    else:
        tokenizer.add_tokens([AddedToken(token, special=True, normalized=False)], special_tokens=True)
    pause_id = tokenizer.convert_tokens_to_ids(token)
    if tokenizer.encode(token, add_special_tokens=False) != [pause_id]:
        raise ConfigError(f"plugins.pause.token '{token}' does not encode to a single id with this tokenizer; "
                          "choose a string without spaces.")
    return pause_id


def ensure_embedding_row(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, pause_id: int) -> None:
    """Give a model loaded from ``model.path`` a row for the pause (in the embedding and the LM head).

    ``resize_token_embeddings`` re-ties a tied head and initialises the new row around the mean of the
    existing ones; a model built from a config is already sized for the tokenizer, so this is a no-op.
    """
    if model.get_input_embeddings().num_embeddings <= pause_id:
        model.resize_token_embeddings(max(len(tokenizer), pause_id + 1))
