"""Bad input: a clear message, exit code 2, and the store byte-for-byte unchanged."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from litplug_sift_masks.runs import add_run
from litplug_sift_masks.store import SiftStore
from safetensors.torch import load_file, save_file

from litplug.testing import cli as main


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path, sift_runs: dict[str, Path]) -> SiftStore:
    add_run(tmp_path / "store", sift_runs["add"])
    add_run(tmp_path / "store", sift_runs["mul"])
    return SiftStore(tmp_path / "store")


def _copy_run(run_dir: Path, target: Path, name: str, edit_config: dict | None = None) -> Path:
    shutil.copytree(run_dir, target)
    config = yaml.safe_load((target / "config.yaml").read_text())
    config["run"]["name"] = name
    for dotted, value in (edit_config or {}).items():
        node = config
        *parents, last = dotted.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    (target / "config.yaml").write_text(yaml.safe_dump(config))
    return target


def _fails(argv: list[str], store: SiftStore, capsys: pytest.CaptureFixture[str], *words: str) -> None:
    before = _snapshot(store.root)
    assert main(argv) == 2
    message = capsys.readouterr().err
    for word in words:
        assert word in message, message
    assert _snapshot(store.root) == before


def test_unlearning_an_unknown_task(store: SiftStore, capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["sift", "unlearn", "nope", "--store", str(store.root)], store, capsys, "no task named 'nope'", "add, mul")


def test_adding_a_task_trained_with_another_sign_seed(tmp_path: Path, store: SiftStore, sift_runs: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = _copy_run(sift_runs["rev"], tmp_path / "seed7", "seed7", {"plugins.sift_masks.sign_seed": 7})
    _fails(["sift", "add", str(other), "--store", str(store.root)], store, capsys, "sign_seed=7", "sign seed 0")


def test_adding_weights_that_disagree_with_v(tmp_path: Path, store: SiftStore, sift_runs: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Config claims the right seed, but the weights were not sign-fixed: the entry-wise check catches it."""
    fake = _copy_run(sift_runs["rev"], tmp_path / "unsifted", "unsifted")
    weights = load_file(fake / "export" / "model.safetensors")
    noise = torch.Generator().manual_seed(1)
    weights = {n: t + 1e-3 * torch.randn(t.shape, generator=noise) for n, t in weights.items()}
    save_file(weights, str(fake / "export" / "model.safetensors"), metadata={"format": "pt"})
    _fails(["sift", "add", str(fake), "--store", str(store.root)], store, capsys,
           "disagrees with the store's sign vector")


def test_adding_a_task_from_another_base_model(tmp_path: Path, store: SiftStore, sift_runs: dict[str, Path],
                                               make_sift_base: Callable[[Path, int], Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other_base = str(make_sift_base(tmp_path / "other-base", 1))
    other = _copy_run(sift_runs["rev"], tmp_path / "other", "other",
                      {"model.path": other_base, "data.tokenizer": other_base})
    _fails(["sift", "add", str(other), "--store", str(store.root)], store, capsys, "differ from the store's base")


def test_adding_a_run_without_sift(tmp_path: Path, store: SiftStore, sift_runs: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    plain = _copy_run(sift_runs["rev"], tmp_path / "plain", "plain", {"plugins": {}})
    _fails(["sift", "add", str(plain), "--store", str(store.root)], store, capsys, "not trained with the sift_masks")


def test_adding_a_task_name_twice(store: SiftStore, sift_runs: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["sift", "add", str(sift_runs["add"]), "--store", str(store.root)], store, capsys,
           "already has a task named 'add'")


@pytest.mark.parametrize("target", ["tau_sum", "mask", "base", "manifest"])
def test_a_corrupted_store_file(target: str, store: SiftStore, sift_runs: dict[str, Path],
                                capsys: pytest.CaptureFixture[str]) -> None:
    files = {"tau_sum": store.manifest["tau_sum"]["file"], "mask": store.task("mul")["mask"]["file"],
             "base": "base/model.safetensors", "manifest": "manifest.json"}
    path = store.root / files[target]
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    verbs = {
        "tau_sum": ["sift", "add", str(sift_runs["rev"]), "--store", str(store.root)],
        "mask": ["sift", "unlearn", "mul", "--store", str(store.root)],
        "base": ["sift", "export", str(store.root.parent / "out"), "--store", str(store.root), "--merged"],
        "manifest": ["sift", "list", "--store", str(store.root)],
    }
    _fails(verbs[target], store, capsys, "corrupted", str(path) if target != "manifest" else "manifest")
    assert not (store.root.parent / "out").exists()
    if target != "manifest":
        _fails(["sift", "verify", "--store", str(store.root)], store, capsys, "corrupted")


def test_unlearning_with_weights_that_are_not_the_task(store: SiftStore, sift_runs: dict[str, Path],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    _fails(["sift", "unlearn", "mul", "--store", str(store.root), "--from", str(sift_runs["rev"])], store, capsys,
           "not the ones added as task 'mul'")


def test_invalid_plugin_options() -> None:
    from litplug.api import ConfigError, load_config, plugin_manager

    with pytest.raises(ConfigError, match="plugins.sift_masks.*sign_seed"):
        plugin_manager(load_config(None, ["plugins.sift_masks={sign_seed: -1}"]))


def test_a_freeze_pattern_that_matches_nothing(tmp_path: Path, litplug_data_cache: Path) -> None:
    from litplug.api import ConfigError, build_module, setup_run
    from litplug.testing import TINY_OVERRIDES

    run = setup_run(None, [*TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"data.cache_dir={litplug_data_cache}",
                               "plugins.sift_masks={freeze: ['nothing.*']}"])
    with pytest.raises(ConfigError, match="plugins.sift_masks.freeze.*nothing"):
        build_module(run)
