"""Task arithmetic and TIES on the same task vectors, checked against direct per-entry references."""

from __future__ import annotations

from pathlib import Path

import torch
from litplug_sift_masks.baselines import task_arithmetic, ties
from safetensors.torch import load_file, save_file

from litplug.testing import cli as main


def _model(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")
    save_file(tensors, str(path / "model.safetensors"))
    return path


def _setup(tmp_path: Path) -> tuple[Path, list[Path], dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    g = torch.Generator().manual_seed(0)
    theta0 = {"a": torch.randn(4, 5, generator=g), "b": torch.randn(7, generator=g)}
    taus = [{n: torch.randn(t.shape, generator=g) * (k + 1) for n, t in theta0.items()} for k in range(3)]
    base = _model(tmp_path / "base", theta0)
    models = [_model(tmp_path / f"m{k}", {n: theta0[n] + tau[n] for n in theta0}) for k, tau in enumerate(taus)]
    taus = [{n: load_file(m / "model.safetensors")[n].double() - theta0[n].double() for n in theta0} for m in models]
    return base, models, theta0, taus


def _ties_reference(taus: list[dict[str, torch.Tensor]], density: float) -> dict[str, list[float]]:
    """TIES written entry by entry (Yadav et al. 2023, Alg. 1)."""
    flat = [torch.cat([t[n].reshape(-1) for n in sorted(t)]) for t in taus]
    trimmed = []
    for f in flat:
        k = max(1, round(density * f.numel()))
        threshold = sorted(f.abs().tolist(), reverse=True)[k - 1]
        trimmed.append([x if abs(x) >= threshold else 0.0 for x in f.tolist()])
    merged = []
    for i in range(flat[0].numel()):
        column = [t[i] for t in trimmed]
        total = sum(column)
        sign = (total > 0) - (total < 0)
        agree = [x for x in column if x != 0 and ((x > 0) - (x < 0)) == sign]
        merged.append(sum(agree) / len(agree) if agree else 0.0)
    out, start = {}, 0
    for n in sorted(taus[0]):
        size = taus[0][n].numel()
        out[n] = merged[start : start + size]
        start += size
    return out


def test_ties_matches_the_entrywise_reference(tmp_path: Path) -> None:
    base, models, theta0, taus = _setup(tmp_path)
    merged = ties(base, models, density=0.4, scale=1.0)
    reference = _ties_reference(taus, 0.4)
    for name in theta0:
        expected = (theta0[name].double() + torch.tensor(reference[name], dtype=torch.float64).reshape(
            theta0[name].shape)).float()
        torch.testing.assert_close(merged[name], expected, rtol=0, atol=1e-6)
    assert not all(torch.equal(merged[n], task_arithmetic(base, models)[n]) for n in theta0)


def test_task_arithmetic_is_the_mean_task_vector(tmp_path: Path) -> None:
    base, models, theta0, taus = _setup(tmp_path)
    merged = task_arithmetic(base, models, scale=0.5)
    for name in theta0:
        expected = (theta0[name].double() + 0.5 * sum(t[name] for t in taus) / 3).float()
        assert torch.equal(merged[name], expected)


def test_merge_cli_writes_a_loadable_directory(tmp_path: Path) -> None:
    base, models, theta0, _ = _setup(tmp_path)
    out = tmp_path / "ties"
    assert main(["merge", "ties", "--base", str(base), "--out", str(out), "--density", "0.5",
                 *map(str, models)]) == 0
    assert (out / "config.json").is_file() and set(load_file(out / "model.safetensors")) == set(theta0)
    assert main(["merge", "ties", "--base", str(base), "--out", str(out), *map(str, models)]) == 2  # exists
    assert main(["merge", "ties", "--base", str(base), "--out", str(tmp_path / "x"), "--density", "0",
                 str(models[0])]) == 2
