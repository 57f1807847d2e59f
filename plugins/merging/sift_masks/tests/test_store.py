"""The merge store: masks are local, the sum never cancels, unlearning equals never having added,
served weights follow the formula, and a failed update leaves the store as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from litplug_sift_masks.masks import unpack_mask
from litplug_sift_masks.runs import add_run
from litplug_sift_masks.signs import sign_positive
from litplug_sift_masks.store import SiftStore
from safetensors.torch import load_file

from litplug.testing import cli as main


def _vector(run_dir: Path, base: Path) -> dict[str, torch.Tensor]:
    tuned, theta0 = load_file(run_dir / "export" / "model.safetensors"), load_file(base / "model.safetensors")
    return {n: tuned[n].double() - theta0[n].double() for n in theta0}


def _unflatten(store: SiftStore, flat: np.ndarray) -> dict[str, torch.Tensor]:
    return {e.name: torch.from_numpy(flat[e.offset : e.offset + e.numel].copy()).reshape(e.shape) for e in store.layout}


def _mask(store: SiftStore, task: str) -> dict[str, torch.Tensor]:
    packed = store.read_mask(task)
    return {e.name: unpack_mask(packed[e.offset // 8 :][: e.padded // 8], e.shape) for e in store.layout}


def _build(root: Path, runs: dict[str, Path], names: list[str]) -> SiftStore:
    for name in names:
        add_run(root, runs[name])
    return SiftStore(root)


def test_masks_are_local_and_the_sum_never_cancels(tmp_path: Path, sift_runs: dict[str, Path]) -> None:
    store = _build(tmp_path / "store", sift_runs, ["add", "mul", "rev"])
    total = _unflatten(store, store.read_sum())
    vectors = {t: _vector(sift_runs[t], sift_runs["base"]) for t in ("add", "mul", "rev")}
    for task, tau in vectors.items():
        mask = _mask(store, task)
        for name, t in tau.items():
            positive = sign_positive(name, t.shape, 0)
            assert torch.equal(mask[name], t != 0)
            assert torch.equal(mask[name], torch.where(positive, t > 0, t < 0))
        assert 0 < sum(int(m.sum()) for m in mask.values()) < sum(m.numel() for m in mask.values())
    for name, s in total.items():
        positive = sign_positive(name, s.shape, 0)
        assert not torch.where(positive, s < 0, s > 0).any(), f"entries of the sum disagree with v in {name}"
        largest = torch.stack([vectors[t][name].abs() for t in vectors]).amax(0)
        assert (s.abs() >= largest).all(), "a task's entry shrank in the sum: cancellation"
    assert torch.equal(total["lm_head.weight"], sum(v["lm_head.weight"] for v in vectors.values()))


def test_unlearning_equals_a_store_built_without_the_task(tmp_path: Path, sift_runs: dict[str, Path]) -> None:
    full = _build(tmp_path / "full", sift_runs, ["add", "mul", "rev"])
    masks_before = {t: full.read_mask(t).tobytes() for t in ("add", "rev")}
    # --retrain re-runs the task's recorded config from the store's copy of theta_0
    assert main(["sift", "unlearn", "mul", "--store", str(full.root), "--retrain"]) == 0
    full = SiftStore(full.root)
    without = _build(tmp_path / "without", sift_runs, ["add", "rev"])
    assert [t["name"] for t in full.tasks] == ["add", "rev"]
    assert full.read_sum().dtype == np.float64
    assert np.array_equal(full.read_sum(), without.read_sum())  # exact, float64, same order of additions
    for task in ("add", "rev"):
        assert full.read_mask(task).tobytes() == masks_before[task] == without.read_mask(task).tobytes()
    served = [full.served_weights("add"), without.served_weights("add")]
    assert all(torch.equal(served[0][n], served[1][n]) for n in served[0])
    full.verify()
    assert sorted(p.name for p in (full.root / "masks").iterdir()) == sorted(
        Path(t["mask"]["file"]).name for t in full.tasks)


def test_served_weights_follow_the_formula(tmp_path: Path, sift_runs: dict[str, Path]) -> None:
    store = _build(tmp_path / "store", sift_runs, ["add", "mul", "rev"])
    out = tmp_path / "served-add"
    assert main(["sift", "export", str(out), "--store", str(store.root), "--task", "add"]) == 0
    served, theta0 = load_file(out / "model.safetensors"), load_file(sift_runs["base"] / "model.safetensors")
    total, mask = _unflatten(store, store.read_sum()), _mask(store, "add")
    for name in theta0:
        assert torch.equal(served[name][~mask[name]], theta0[name][~mask[name]]), "delta outside the task's mask"
        expected = (theta0[name].double() + (total[name] * mask[name]) / 3).float()
        assert torch.equal(served[name], expected)
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    merged = store.served_weights(None)
    for name in theta0:
        assert torch.equal(merged[name], (theta0[name].double() + total[name] / 3).float())


def test_an_update_that_dies_before_its_commit_leaves_the_store_unchanged(
        tmp_path: Path, sift_runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    store = _build(tmp_path / "store", sift_runs, ["add"])
    before = (store.root / "manifest.json").read_bytes()
    import litplug_sift_masks.store as store_mod

    real_write = store_mod._write_manifest

    def die(root: Path, manifest: dict) -> None:
        raise OSError("killed before the commit (simulated)")

    monkeypatch.setattr(store_mod, "_write_manifest", die)
    with pytest.raises(OSError, match="simulated"):
        add_run(store.root, sift_runs["mul"])
    monkeypatch.setattr(store_mod, "_write_manifest", real_write)
    assert (store.root / "manifest.json").read_bytes() == before
    assert len(list(store.root.glob("tau_sum.*.npy"))) == 2  # the dead update's files, not referenced
    SiftStore(store.root).verify()
    add_run(store.root, sift_runs["mul"])  # the next update works and sweeps what the dead one left
    after = SiftStore(store.root)
    assert [t["name"] for t in after.tasks] == ["add", "mul"]
    assert len(list(store.root.glob("tau_sum.*.npy"))) == 1
    assert len(list((store.root / "masks").glob("*.npy"))) == 2
    after.verify()
