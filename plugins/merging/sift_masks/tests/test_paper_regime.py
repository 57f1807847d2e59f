"""The paper's finetuning regime and the sweep's comparison verb: embeddings and LM head frozen by default
(kept at theta_0, out of every mask), one owner per run out of a list (``--source``), and
``litplug sift compare`` writing the metrics the sweep reports."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litplug.testing import cli as main

OWNERS = ("[{name: add, task: arithmetic, params: {digits: 2}, num_train: 64, num_validation: 8, num_test: 8}, "
          "{name: mul, task: arithmetic, params: {digits: 2, op: mul}, num_train: 64, num_validation: 8, num_test: 8}, "
          "{name: rev, task: arithmetic, params: {digits: 2, reverse_answer: true}, num_train: 64, "
          "num_validation: 8, num_test: 8}]")


def _owner_overrides(base: Path, out: Path, name: str, cache: Path) -> list[str]:
    from litplug.testing import TINY_OVERRIDES

    return [*TINY_OVERRIDES, f"run.output_dir={out}", "run.name=run", f"data.cache_dir={cache}", f"model.path={base}",
            f"data.tokenizer={base}", f"data.sources={OWNERS}", "eval.split=train", "eval.num_examples=4",
            "data.loss_on=answer", "plugins.sift_masks={sign_seed: 0}"]


@pytest.fixture(scope="module")
def owner_runs(tmp_path_factory: pytest.TempPathFactory, sift_base: Path, litplug_data_cache: Path) -> dict[str, Path]:
    """Three owners, each trained alone out of one three-owner config with ``--source``."""
    from litplug_sift_masks.runs import train_task

    root = tmp_path_factory.mktemp("owners")
    return {name: train_task(None, _owner_overrides(sift_base, root / f"owner={name}", name, litplug_data_cache), name)
            for name in ("add", "mul", "rev")}


def test_the_default_keeps_embeddings_and_lm_head_at_theta0(sift_runs: dict[str, Path]) -> None:
    from litplug_sift_masks.config import SiftConfig

    assert SiftConfig().freeze == ["embeddings", "lm_head"]
    theta0 = load_file(sift_runs["base"] / "model.safetensors")
    tuned = load_file(sift_runs["add"] / "export" / "model.safetensors")  # trained with plugins.sift_masks defaults
    frozen = {"model.embed_tokens.weight", "lm_head.weight"}
    for name in frozen:
        assert torch.equal(tuned[name], theta0[name]), f"{name} moved: it is not frozen"
    moved = [n for n in theta0 if n not in frozen and not torch.equal(tuned[n], theta0[n])]
    assert any(".layers." in n for n in moved), moved  # the hidden layers (and the final norm) still train


def test_frozen_tensors_are_outside_every_mask(tmp_path: Path, sift_runs: dict[str, Path]) -> None:
    from litplug_sift_masks.masks import unpack_mask
    from litplug_sift_masks.runs import add_run
    from litplug_sift_masks.store import SiftStore

    add_run(tmp_path / "store", sift_runs["add"])
    store = SiftStore(tmp_path / "store")
    packed = store.read_mask("add")
    bits = {e.name: unpack_mask(packed[e.offset // 8 :][: e.padded // 8], e.shape) for e in store.layout}
    assert not bits["model.embed_tokens.weight"].any() and not bits["lm_head.weight"].any()
    assert any(bits[n].any() for n in bits if ".layers." in n)


def test_freeze_aliases_follow_the_model_accessors(sift_base: Path) -> None:
    from litplug_sift_masks.plugin import frozen_names
    from omegaconf import OmegaConf

    from litplug.api import ConfigError, ModelConfig, build_model, load_tokenizer

    tokenizer = load_tokenizer(str(sift_base))
    for tied, expected in ((False, ["model.embed_tokens.weight", "lm_head.weight"]),
                           (True, ["model.embed_tokens.weight"])):
        cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"hidden_size": 16, "num_attention_heads": 2,
                                                                  "intermediate_size": 32, "tie_word_embeddings": tied})
        model = build_model(cfg, tokenizer)
        assert frozen_names(model, ["embeddings", "lm_head"]) == expected
        assert frozen_names(model, ["*.layers.0.mlp.*"]) == [n for n, _ in model.named_parameters()
                                                             if ".layers.0.mlp." in n]
        with pytest.raises(ConfigError, match="freeze.*'nothing'"):
            frozen_names(model, ["nothing"])


def test_an_empty_freeze_trains_the_embeddings(tmp_path: Path, train_sift_task: Callable[..., Path],
                                               sift_runs: dict[str, Path]) -> None:
    run = train_sift_task(tmp_path, "add", 1, "plugins.sift_masks.freeze=[]")
    theta0 = load_file(sift_runs["base"] / "model.safetensors")
    tuned = load_file(run / "export" / "model.safetensors")
    assert not torch.equal(tuned["model.embed_tokens.weight"], theta0["model.embed_tokens.weight"])
    assert not torch.equal(tuned["lm_head.weight"], theta0["lm_head.weight"])


def test_source_trains_one_owner_of_a_list(owner_runs: dict[str, Path], tmp_path: Path, sift_base: Path,
                                           litplug_data_cache: Path) -> None:
    import yaml
    from litplug_sift_masks.runs import train_task

    from litplug.api import ConfigError

    config = yaml.safe_load((owner_runs["mul"] / "config.yaml").read_text())
    assert [s["name"] for s in config["data"]["sources"]] == ["mul"]
    assert config["data"]["sources"][0]["params"] == {"digits": 2, "op": "mul"}
    with pytest.raises(ConfigError, match="--source nope.*add, mul, rev"):
        train_task(None, _owner_overrides(sift_base, tmp_path, "nope", litplug_data_cache), "nope")


def test_answer_probability_is_the_length_normalised_likelihood(owner_runs: dict[str, Path], sift_base: Path) -> None:
    from litplug_sift_masks.compare import Scorer

    from litplug.api import build_rows, load_config, read_examples, source_specs

    scorer = Scorer(sift_base)
    scorer.load(load_file(owner_runs["add"] / "export" / "model.safetensors"))
    em, prob = scorer(owner_runs["add"])
    cfg = load_config(str(owner_runs["add"] / "config.yaml"), [])
    examples = read_examples(source_specs(cfg)[0], "train", cfg.data.seed)[:4]
    expected = []
    for row in build_rows(scorer.tokenizer, examples, cfg.data.seq_len, "add"):
        ids, n_prompt = torch.tensor(row[: int(row[-1])]).long(), int(row[-2])
        labels = ids.clone()
        labels[:n_prompt] = -100  # HF's loss: the mean NLL of the answer tokens and EOS
        with torch.no_grad():
            loss = scorer.model(input_ids=ids[None], labels=labels[None]).loss
        expected.append(math.exp(-float(loss)))
    assert prob == pytest.approx(sum(expected) / len(expected), rel=1e-5)
    assert 0.0 <= em <= 1.0


def test_compare_writes_every_method_and_an_exact_unlearning(owner_runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cell" / "results.json"
    pattern = str(next(iter(owner_runs.values())).parent.parent / "owner=*")
    assert main(["sift", "compare", "--runs", pattern, "--owners", "mul,add,rev", "--first", "2", "--unlearn", "mul",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    metrics = result["metrics"]
    assert result["owners"] == ["mul", "add"] and metrics["num_tasks"] == 2
    for score in ("em", "prob"):
        for method in ("base", "individual", "naive", "ties", "sift", "sift_inv_density", "sift_mask_count"):
            assert 0.0 <= metrics[f"{score}/{method}"] <= 1.0
        diff = metrics[f"{score}/sift"] - metrics[f"{score}/naive"]
        assert metrics[f"diff_{score}/sift_vs_naive"] == pytest.approx(diff)
    assert metrics["unlearn/exact"] == 1.0
    assert math.isnan(metrics["unlearn/pretrain_overlap"])  # no --pretrain given
    for row in result["per_owner"].values():
        # the frozen embeddings/head make the trained-tensor density higher than the all-tensor one
        assert 0 < row["density"] < row["density_trained"] <= 1
        # lambda = 1/density scales the whole served delta by that factor
        assert row["own_share/sift_inv_density"] == pytest.approx(row["own_share/sift"] / row["density_trained"],
                                                                  rel=1e-4)
        assert row["norm_ratio/sift"] > 0
    assert not (tmp_path / "cell" / ".results-work").exists()


def test_compare_refuses_a_missing_owner(owner_runs: dict[str, Path], tmp_path: Path) -> None:
    pattern = str(next(iter(owner_runs.values())).parent.parent / "owner=*")
    assert main(["sift", "compare", "--runs", pattern, "--owners", "add,nobody", "--out",
                 str(tmp_path / "r.json")]) == 2
    assert not (tmp_path / "r.json").exists()


def test_pretrain_overlap_counts_examples_the_base_saw(tmp_path: Path) -> None:
    from litplug_sift_masks.compare import pretrain_overlap

    from litplug.api import load_config, to_yaml

    source = "{name: s, task: arithmetic, params: {digits: 2}, num_train: 100}"
    owner = load_config(None, [f"data.sources=[{source}]", "data.seed=7", "eval.split=train", "eval.num_examples=20"])
    same = tmp_path / "same"
    same.mkdir()
    (same / "config.yaml").write_text(to_yaml(load_config(None, [f"data.sources=[{source}]", "data.seed=7"])))
    assert pretrain_overlap(owner, tmp_path / "same") == 1.0  # the very same draw
    disjoint = tmp_path / "disjoint"
    disjoint.mkdir()
    (disjoint / "config.yaml").write_text(to_yaml(load_config(None, [
        "data.sources=[{name: q, task: qa, params: {context_len: 2, num_keys: 8, num_values: 8}, num_train: 50}]"])))
    assert pretrain_overlap(owner, disjoint) == 0.0  # no source of the owner's task
