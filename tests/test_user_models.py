"""A user's own model and tokenizer, saved with ``save_pretrained``: BOS-less tokenizers, special tokens in
the data cache key, models that transform their logits, attention implementations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedTokenizerFast

from litplug.cli import main
from litplug.data.prepare import prepare_split, tokenizer_fingerprint
from litplug.data.sources import SourceSpec
from litplug.data.tasks import get_task
from litplug.errors import DataError
from litplug.generate import generate
from litplug.plugins import load_plugins
from litplug.testing import TINY_OVERRIDES, run_training

WORDS = get_task("arithmetic", {"digits": 2}).vocab()


def save_tokenizer(path: Path, **specials: str) -> Path:
    """A word-level tokenizer over the arithmetic vocabulary with exactly the given special tokens
    (GPT-NeoX / Qwen-2 tokenizers have no BOS: ``save_tokenizer(d, eos_token=..., pad_token=...)``)."""
    vocab: dict[str, int] = {}
    for word in ["<unk>", "<|endoftext|>", "<|pad|>", "<s>", *WORDS]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **specials).save_pretrained(path)
    return path


def test_a_bos_less_tokenizer_trains_evaluates_and_generates(tmp_path: Path, litplug_data_cache: Path) -> None:
    tok_dir = save_tokenizer(tmp_path / "tok", eos_token="<|endoftext|>")  # no BOS, no PAD either
    run: Any = run_training(tmp_path / "runs", overrides=[f"data.tokenizer={tok_dir}", "eval.num_examples=4"],
                            cache_dir=litplug_data_cache)
    tokenizer = run.tokenizer
    assert tokenizer.bos_token_id is None and tokenizer.pad_token == "<|endoftext|>"  # PAD falls back to EOS
    rows = next(iter(run.datamodule.train_dataloader()))["input_ids"]
    assert rows[:, 0].tolist() != [tokenizer.convert_tokens_to_ids("<s>")] * rows.shape[0]
    assert run.results["global_step"] == 4
    assert "eval/arithmetic/exact_match" in run.results["metrics"]
    pm = load_plugins(run.cfg)[0]
    (out,) = generate(run.module.model, tokenizer, ["3 + 4 ="], pm, max_new_tokens=3)
    assert isinstance(out[0], str)


def test_prompt_answer_data_without_an_eos_token_is_refused_at_startup(tmp_path: Path) -> None:
    tok_dir = save_tokenizer(tmp_path / "tok", pad_token="<|pad|>")  # neither BOS nor EOS
    with pytest.raises(DataError, match="the tokenizer has no EOS token"):
        run_training(tmp_path / "runs", overrides=[f"data.tokenizer={tok_dir}"], cache_dir=tmp_path / "cache")
    assert not (tmp_path / "runs" / "run").exists()


def test_a_tokenizer_with_the_same_vocabulary_but_other_special_tokens_retokenises(tmp_path: Path) -> None:
    from litplug.model import load_tokenizer

    a = load_tokenizer(str(save_tokenizer(tmp_path / "a", bos_token="<s>", eos_token="<|endoftext|>")))
    b = load_tokenizer(str(save_tokenizer(tmp_path / "b", eos_token="<|endoftext|>", pad_token="<|pad|>")))
    assert a.get_vocab() == b.get_vocab() and type(a) is type(b)  # what the old cache key looked at
    assert tokenizer_fingerprint(a) != tokenizer_fingerprint(b)
    spec = SourceSpec(task="arithmetic", params={"digits": 2}, num_train=32, num_validation=8, num_test=8)
    dir_a = prepare_split(spec, "train", a, 16, 0, tmp_path / "cache")
    dir_b = prepare_split(spec, "train", b, 16, 0, tmp_path / "cache")
    assert dir_a != dir_b
    assert tokenizer_fingerprint(load_tokenizer(str(tmp_path / "a"))) == tokenizer_fingerprint(a)  # stable


def _saved_model(tmp_path: Path, architecture: str, **extra: Any) -> tuple[Path, Path]:
    from litplug.model import load_tokenizer

    tok_dir = save_tokenizer(tmp_path / "tok", bos_token="<s>", eos_token="<|endoftext|>", pad_token="<|pad|>")
    tokenizer = load_tokenizer(str(tok_dir))
    config = AutoConfig.for_model(architecture, vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
                                  max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, **extra)
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    AutoModelForCausalLM.from_config(config).save_pretrained(model_dir)
    return model_dir, tok_dir


@pytest.mark.parametrize(("architecture", "extra"), [
    ("granite", {"logits_scaling": 8.0}),
    ("gemma2", {"final_logit_softcapping": 0.5}),  # also: sdpa is not supported, must not crash at load
])
def test_reported_validation_loss_is_the_exported_models_own(architecture: str, extra: dict, tmp_path: Path,
                                                             litplug_data_cache: Path) -> None:
    model_dir, tok_dir = _saved_model(tmp_path, architecture, **extra)
    run: Any = run_training(tmp_path / "runs", overrides=[f"model.path={model_dir}", f"data.tokenizer={tok_dir}"],
                            cache_dir=litplug_data_cache)
    reported = run.results["metrics"]["val/arithmetic/loss"]
    exported = AutoModelForCausalLM.from_pretrained(run.export_dir, local_files_only=True).eval()
    batch = next(iter(run.datamodule.val_dataloader()[0]))  # limit_val_batches=1: the batch it reported on
    labels = batch["labels"]
    with torch.no_grad():
        logits = exported(input_ids=batch["input_ids"], use_cache=False).logits
    own = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
    assert reported == pytest.approx(float(own), abs=1e-4), (reported, float(own))


def test_an_attention_implementation_the_model_lacks_is_a_clear_error(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    model_dir, tok_dir = _saved_model(tmp_path, "gemma2")
    code = main(["train", *TINY_OVERRIDES, f"run.output_dir={tmp_path / 'runs'}", f"model.path={model_dir}",
                 f"data.tokenizer={tok_dir}", "model.attn_implementation=sdpa"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "model.attn_implementation" in err and "auto" in err
    assert not (tmp_path / "runs" / "run").exists()


def test_model_extra_reaches_the_config(tmp_path: Path, litplug_data_cache: Path) -> None:
    run: Any = run_training(tmp_path, overrides=["model.architecture=granite",
                                                  "model.extra=" + json.dumps({"logits_scaling": 3.0})],
                            cache_dir=litplug_data_cache)
    assert run.module.output_head.scale == pytest.approx(1 / 3)
