"""The merge: exact endpoints, the mean at α = 0.5, affinity in α, buffers, HF loading, sharding, memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch
from litplug_wise_ft.interpolate import interpolate_dirs, interpolate_tensor
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM


def weights(folder: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for file in sorted(folder.glob("*.safetensors")):
        out.update(load_file(file))
    return out


def write_dir(folder: Path, tensors: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True)
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def special_tensors(seed: int) -> dict[str, torch.Tensor]:
    """Values that break naive arithmetic at the endpoints (-0.0, NaN, inf), a bf16 tensor, a buffer."""
    g = torch.Generator().manual_seed(seed)
    odd = torch.randn(6, generator=g)
    odd[:3] = torch.tensor([-0.0, float("nan"), float("inf")])
    return {"w": torch.randn(5, 7, generator=g), "odd": odd, "half": torch.randn(9, generator=g).bfloat16(),
            "steps": torch.arange(4) + seed}


@pytest.mark.parametrize("alpha,endpoint", [(0.0, "early"), (1.0, "late")])
def test_endpoints_are_bit_exact(tmp_path: Path, model_pair: Any, alpha: float, endpoint: str) -> None:
    early, late, _, _ = model_pair
    out = tmp_path / f"merged_{alpha}"
    interpolate_dirs(early, late, alpha, out)
    expected = weights(early if endpoint == "early" else late)
    got = weights(out)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name].dtype == expected[name].dtype
        assert torch.equal(got[name].view(torch.uint8), expected[name].view(torch.uint8)), name


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_endpoints_keep_signed_zero_nan_and_inf(tmp_path: Path, alpha: float) -> None:
    early = write_dir(tmp_path / "a", special_tensors(0))
    late = write_dir(tmp_path / "b", special_tensors(1))
    interpolate_dirs(early, late, alpha, tmp_path / "out")
    expected, got = weights(early if alpha == 0 else late), weights(tmp_path / "out")
    for name in expected:  # compare raw bytes: NaN != NaN and -0.0 == 0.0 as floats
        assert torch.equal(got[name].view(torch.uint8), expected[name].view(torch.uint8)), name


def test_midpoint_is_the_elementwise_mean(tmp_path: Path, model_pair: Any) -> None:
    early, late, _, _ = model_pair
    interpolate_dirs(early, late, 0.5, tmp_path / "mid")
    a, b, got = weights(early), weights(late), weights(tmp_path / "mid")
    for name in a:
        mean = (a[name].double() + b[name].double()) / 2
        torch.testing.assert_close(got[name].double(), mean, rtol=0, atol=2e-7 * (1 + mean.abs().max().item()))
        assert not torch.equal(got[name], a[name]), f"{name} did not move"


def test_result_is_affine_in_alpha() -> None:
    g = torch.Generator().manual_seed(0)
    early, late = torch.randn(64, 32, generator=g), torch.randn(64, 32, generator=g)
    alphas = [0.1, 0.35, 0.6, 0.85]
    points = [interpolate_tensor(early, late, a).double() for a in alphas]
    for alpha, point in zip(alphas, points):  # every point is on the line early + α·(late − early) ...
        line = early.double() + alpha * (late.double() - early.double())
        torch.testing.assert_close(point, line, rtol=0, atol=1e-6)
    step = points[1] - points[0]  # ... and equal steps in α give equal steps in θ
    torch.testing.assert_close(points[2] - points[1], step, rtol=0, atol=1e-6)
    torch.testing.assert_close(points[3] - points[2], step, rtol=0, atol=1e-6)


def test_non_float_buffers_are_copied_not_averaged(tmp_path: Path) -> None:
    early = write_dir(tmp_path / "a", special_tensors(0))
    late = write_dir(tmp_path / "b", special_tensors(1))
    record = interpolate_dirs(early, late, 0.3, tmp_path / "near_early")
    assert torch.equal(weights(tmp_path / "near_early")["steps"], torch.arange(4))
    assert record["non_float_tensors_differing"] == ["steps"]
    interpolate_dirs(early, late, 0.7, tmp_path / "near_late")
    assert torch.equal(weights(tmp_path / "near_late")["steps"], torch.arange(4) + 1)
    same = write_dir(tmp_path / "c", {**special_tensors(1), "steps": torch.arange(4)})
    interpolate_dirs(early, same, 0.7, tmp_path / "same")
    assert torch.equal(weights(tmp_path / "same")["steps"], torch.arange(4))
    assert weights(tmp_path / "same")["steps"].dtype == torch.int64


def test_low_precision_is_computed_in_float32_and_keeps_the_late_dtype() -> None:
    early = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float32)
    late = torch.tensor([1.0078125, 2.0, 4.0], dtype=torch.bfloat16)
    got = interpolate_tensor(early, late, 0.25)
    assert got.dtype == torch.bfloat16
    assert torch.equal(got, torch.lerp(early, late.float(), 0.25).bfloat16())


def test_loads_with_plain_transformers_and_matches_manual_interpolation(tmp_path: Path, model_pair: Any) -> None:
    early, late, early_model, late_model = model_pair
    alpha = 0.3
    interpolate_dirs(early, late, alpha, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", local_files_only=True).eval()
    manual = AutoModelForCausalLM.from_pretrained(early, local_files_only=True).eval()
    late_state = late_model.state_dict()
    with torch.no_grad():
        for name, tensor in manual.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_((1 - alpha) * early_model.state_dict()[name] + alpha * late_state[name])
    ids = torch.randint(0, merged.config.vocab_size, (3, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, manual(ids).logits, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(merged(ids).logits, late_model.eval()(ids).logits, atol=1e-3)
    assert (tmp_path / "merged" / "tokenizer.json").is_file()
    assert json.loads((tmp_path / "merged" / "wise_ft_merge.json").read_text())["alpha"] == alpha


def test_sharded_output_and_input(tmp_path: Path, model_pair: Any) -> None:
    early, late, _, late_model = model_pair
    sharded_late = tmp_path / "late_sharded"
    late_model.save_pretrained(sharded_late, max_shard_size="20KB")
    assert (sharded_late / "model.safetensors.index.json").is_file()
    interpolate_dirs(early, late, 0.4, tmp_path / "single")
    interpolate_dirs(early, sharded_late, 0.4, tmp_path / "sharded", max_shard_size=20_000)
    index = json.loads((tmp_path / "sharded" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    single, sharded = weights(tmp_path / "single"), weights(tmp_path / "sharded")
    assert single.keys() == sharded.keys() and all(torch.equal(single[k], sharded[k]) for k in single)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "sharded", local_files_only=True)
    assert all(torch.equal(loaded.state_dict()[k], single[k]) for k in single)


MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    from litplug_wise_ft.interpolate import interpolate_dirs

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    before = status("VmRSS")
    interpolate_dirs(sys.argv[1], sys.argv[2], 0.5, sys.argv[3], max_shard_size=sys.argv[4])
    print(json.dumps({"before": before, "peak": status("VmHWM")}))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to read peak RSS")
def test_peak_memory_of_a_merge_stays_below_two_models(tmp_path: Path) -> None:
    """Measured in a fresh process: peak RSS during the merge minus RSS before it, over one model's size."""
    model_bytes = 0
    for name, seed in (("a", 0), ("b", 1)):
        g = torch.Generator().manual_seed(seed)
        tensors = {f"layer{i}.weight": torch.randn(1024, 4096, generator=g) for i in range(4)}
        model_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
        write_dir(tmp_path / name, tensors)
        del tensors
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path / "a"), str(tmp_path / "b"),
                          str(tmp_path / "out"), "2GB"], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = (probe["peak"] - probe["before"]) / model_bytes
    print(f"peak extra memory / model size: {ratio:.2f}")  # smaller shards: benchmarks/wise_ft_merge_memory.py
    assert ratio < 2.0, ratio  # the one output shard holds the whole model here
