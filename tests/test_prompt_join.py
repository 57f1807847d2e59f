"""Prompt/answer joining: where a tokenizer joins a space to the word after it (byte-level BPE's 'Ġ4',
SentencePiece's '▁4') a row reads as the text would naturally be tokenised, with no lone space token;
byte and word tokenizers keep their ids; and generation feeds exactly the prompt ids training saw."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pluggy
import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from litplug import hookspecs
from litplug.data import prepare
from litplug.data.prepare import build_rows, encode_example, encode_prompt, prepare_split, space_leads
from litplug.data.sources import SourceSpec
from litplug.data.tasks import Example, get_task
from litplug.generate import encode_prompts
from litplug.metrics import exact_match
from litplug.model import SPECIAL_TOKENS, byte_tokenizer, word_tokenizer

TASK = get_task("arithmetic", {"digits": 2})
EXAMPLES = [Example("2 + 2 =", "4"), *TASK.examples("train", 40, 0)]
# GPT-2 keeps a space with the digits after it; Llama-3 never does, but does with a word.
Maker = Callable[[], PreTrainedTokenizerFast]
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+"


def _texts() -> list[str]:
    rng = random.Random(0)
    sums = [f"{a} + {b} = {a + b}" for a, b in ((rng.randrange(100), rng.randrange(100)) for _ in range(300))]
    spelled = [f"{ex.prompt} {ex.answer}" for ex in TASK.examples("train", 300, 1)]
    words = ["is the answer yes", "what is a sum", "the sum is yes : A"] * 20
    return sums + spelled + words


def _bpe(pre: object, decoder: object) -> PreTrainedTokenizerFast:
    """A BPE tokenizer trained here on a few sums (no download), wrapped as :mod:`litplug.model` does."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer, tok.decoder = pre, decoder
    byte_level = isinstance(pre, (pre_tokenizers.ByteLevel, pre_tokenizers.Sequence))
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=list(SPECIAL_TOKENS.values()), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if byte_level else [])
    tok.train_from_iterator(_texts(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def gpt2_tokenizer() -> PreTrainedTokenizerFast:
    return _bpe(pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel())


def llama3_tokenizer() -> PreTrainedTokenizerFast:
    split = pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated")
    return _bpe(pre_tokenizers.Sequence([split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
                decoders.ByteLevel())


def sentencepiece_tokenizer() -> PreTrainedTokenizerFast:
    return _bpe(pre_tokenizers.Metaspace(), decoders.Metaspace())


def no_plugins() -> pluggy.HookRelay:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm.hook


def tokens_of(tokenizer: PreTrainedTokenizerFast, ids: list[int]) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids)


@pytest.mark.parametrize(("make", "space"), [(gpt2_tokenizer, "Ġ"), (sentencepiece_tokenizer, "▁")],
                         ids=["gpt2", "sentencepiece"])
def test_a_space_leading_tokenizer_joins_the_space_to_the_answer(make: Maker, space: str) -> None:
    tokenizer = make()
    assert space_leads(tokenizer)
    ids, n_prompt = encode_example(tokenizer, Example("2 + 2 =", "4"))
    tokens = tokens_of(tokenizer, ids)
    assert tokens[-3:] == [f"{space}=", f"{space}4", "<eos>"] and space not in tokens, tokens
    assert tokens[n_prompt] == f"{space}4"  # n_prompt points at the first answer token
    natural = tokenizer.encode("2 + 2 = 4", add_special_tokens=False)
    assert ids == [tokenizer.bos_token_id, *natural, tokenizer.eos_token_id]
    assert ids[:n_prompt] == encode_prompt(tokenizer, "2 + 2 =") == encode_prompts(tokenizer, ["2 + 2 ="],
                                                                                     no_plugins())[0]


@pytest.mark.parametrize("make", [gpt2_tokenizer, sentencepiece_tokenizer, llama3_tokenizer])
def test_every_row_is_the_natural_encoding_and_its_prompt_is_what_generation_feeds(make: Maker) -> None:
    tokenizer = make()
    assert space_leads(tokenizer)
    width = 32
    rows = build_rows(tokenizer, EXAMPLES, width - 1, "arithmetic")
    generation = encode_prompts(tokenizer, [ex.prompt for ex in EXAMPLES], no_plugins())
    for row, ex, prompt_ids in zip(rows.tolist(), EXAMPLES, generation, strict=True):
        n_prompt, length = row[-2], row[-1]
        natural = tokenizer.encode(f"{ex.prompt} {ex.answer}", add_special_tokens=False)
        assert row[:length] == [tokenizer.bos_token_id, *natural, tokenizer.eos_token_id], ex
        assert row[:n_prompt] == prompt_ids, ex


def test_digits_that_never_take_a_space_keep_it_as_their_own_answer_token() -> None:
    """Llama-3/Qwen style: the space before a digit is a token of its own in the natural encoding, so it
    is the answer's first token, and the model learns to emit it."""
    tokenizer = llama3_tokenizer()
    ids, n_prompt = encode_example(tokenizer, Example("2 + 2 =", "4"))
    assert tokens_of(tokenizer, ids[n_prompt - 1:]) == ["Ġ=", "Ġ", "4", "<eos>"]
    assert tokens_of(tokenizer, encode_example(tokenizer, Example("what is", "the"))[0])[-2:] == ["Ġthe", "<eos>"]


@pytest.mark.parametrize("make", [byte_tokenizer, lambda: word_tokenizer(TASK.vocab())])
def test_byte_and_word_tokenizers_keep_the_old_ids(make: Maker) -> None:
    tokenizer = make()
    assert not space_leads(tokenizer)
    for ex in EXAMPLES:
        prompt = [tokenizer.bos_token_id, *tokenizer.encode(ex.prompt + " ", add_special_tokens=False)]
        old = [*prompt, *tokenizer.encode(ex.answer, add_special_tokens=False), tokenizer.eos_token_id]
        assert encode_example(tokenizer, ex) == (old, len(prompt))
        assert encode_prompt(tokenizer, ex.prompt) == prompt


@pytest.mark.parametrize("make", [gpt2_tokenizer, sentencepiece_tokenizer, llama3_tokenizer, byte_tokenizer,
                                  lambda: word_tokenizer(TASK.vocab())])
def test_the_answer_ids_decode_to_the_answer(make: Maker) -> None:
    """What generation would emit (the answer's ids up to EOS) decodes, as ``generate`` does, to text that
    exact match accepts."""
    tokenizer = make()
    for ex in EXAMPLES:
        ids, n_prompt = encode_example(tokenizer, ex)
        text = tokenizer.decode(ids[n_prompt:-1], skip_special_tokens=True).strip()
        assert text == ex.answer and exact_match(text, ex.answer), (ex, text)


def test_the_join_is_probed_again_when_tokens_are_added() -> None:
    tokenizer = gpt2_tokenizer()
    assert space_leads(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<pause>"]})
    assert space_leads(tokenizer) and prepare._SPACE_LEADS[tokenizer][0] == len(tokenizer)


def test_the_row_format_is_part_of_the_cache_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written under an older joining rule are never read back as the new ones."""
    spec = SourceSpec(task="arithmetic", params={"digits": 2}, num_train=16, num_validation=4, num_test=4)
    tokenizer = word_tokenizer(TASK.vocab())
    first = prepare_split(spec, "train", tokenizer, 16, 0, tmp_path)
    monkeypatch.setattr(prepare, "ROW_FORMAT", prepare.ROW_FORMAT + 1)
    assert prepare_split(spec, "train", tokenizer, 16, 0, tmp_path) != first
