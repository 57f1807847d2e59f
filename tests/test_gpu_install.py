"""The GPU install and the GPU suite, checked on a CPU machine.

``make setup-gpu`` must resolve to CUDA wheels that work together (torch, Triton, xformers, liger-kernel,
Lightning): a pip dry run of exactly the target's requirement set, for Linux x86_64 / CPython 3.11 wheels,
whatever this machine's own platform or pip configuration (a find-links folder here offers the CPU torch).
``benchmarks/gpu_suite.py --device cpu --smoke`` must run every variant it can and write its table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
GPU_CONSTRAINTS = REPO / "constraints-gpu.txt"
SUITE = REPO / "benchmarks" / "gpu_suite.py"
# Linux x86_64 wheels are tagged with the oldest glibc they need; pip's --platform takes each tag literally
PLATFORMS = [f"manylinux_2_{minor}_x86_64" for minor in range(28, 4, -1)] + [
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
TARGET_ENV = {"sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
              "python_version": "3.11", "python_full_version": "3.11.0", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "extra": ""}
STACK = ("torch", "triton", "xformers", "liger-kernel", "lightning", "transformers")


def setup_gpu_pip_install(tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """(environment assignments, requirement arguments) of the pip install that ``make setup-gpu`` runs,
    read from ``make -n`` so the check follows the Makefile."""
    command = ["make", "--no-print-directory", "-n", "-s", "setup-gpu", f"GPU_VENV={tmp_path / 'venv'}"]
    out = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
    pip_lines = [shlex.split(line) for line in out.splitlines() if " -m pip install" in line]
    assert pip_lines, f"make setup-gpu runs no pip install:\n{out}"
    for words in pip_lines:  # every pip call of the target, not only the main one, is pinned for the GPU
        assert f"PIP_CONSTRAINT={GPU_CONSTRAINTS}" in words, f"not under constraints-gpu.txt: {shlex.join(words)}"
    words = next(w for w in pip_lines if "-e" in w)
    env = dict(w.split("=", 1) for w in words[: words.index("-m") - 1] if "=" in w)
    rest = words[words.index("install") + 1:]
    requirements = [rest[i + 1] for i, w in enumerate(rest) if w == "-e"]
    return env, requirements


def pins() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in GPU_CONSTRAINTS.read_text().splitlines()]
    return {canonicalize_name(r.name): r for r in map(Requirement, filter(None, lines))}


def test_setup_gpu_installs_core_gpu_extras_and_every_plugin(tmp_path: Path) -> None:
    _, requirements = setup_gpu_pip_install(tmp_path)
    core = Requirement("litplug" + requirements[0].removeprefix("."))
    assert requirements[0].startswith(".") and "gpu" in core.extras, requirements
    plugins = {str(p.parent.relative_to(REPO)) for p in REPO.glob("plugins/*/*/pyproject.toml")}
    assert {r.rstrip("/") for r in requirements[1:]} == plugins


def test_gpu_constraints_pin_torch_and_refuse_its_cpu_build() -> None:
    found = pins()
    assert set(STACK) <= set(found), f"constraints-gpu.txt pins {sorted(found)}"
    torch_pin = found["torch"].specifier
    exact = [s.version for s in torch_pin if s.operator == "=="]
    assert len(exact) == 1, f"torch must be pinned to one release: {torch_pin}"
    assert Version(exact[0]) in torch_pin
    # a local version matches "==X" (PEP 440) and sorts above X: without the exclusion pip takes the CPU build
    assert not torch_pin.contains(f"{exact[0]}+cpu", prereleases=True)


def pypi_reachable() -> bool:
    context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
    try:
        request = urllib.request.Request("https://pypi.org/simple/xformers/", method="HEAD")
        with urllib.request.urlopen(request, timeout=10, context=context):
            return True
    except OSError:
        return False


def requirement_holds(requirement: str, resolved: dict[str, str]) -> bool | None:
    """Whether the resolved version of ``requirement``'s package satisfies it on the GPU target; None when
    the requirement does not apply there (a marker, an extra) or names a package not installed."""
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate(TARGET_ENV):
        return None
    name = canonicalize_name(req.name)
    return req.specifier.contains(resolved[name], prereleases=True) if name in resolved else None


@pytest.fixture(scope="module")
def gpu_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """pip's installation report of ``make setup-gpu``'s requirements, resolved for a Linux x86_64 GPU
    machine; metadata only (fast-deps reads a wheel's METADATA with HTTP range requests: PyPI has no
    separate metadata file for torch and the CUDA libraries, and pip would fetch about 3 GB of wheels)."""
    if not pypi_reachable():
        pytest.skip("PyPI (https://pypi.org) is unreachable: cannot check that the GPU install resolves")
    tmp = tmp_path_factory.mktemp("gpu_resolve")
    env, requirements = setup_gpu_pip_install(tmp)
    report = tmp / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--use-feature=fast-deps", "--report", str(report), "--target", str(tmp / "target"),
               "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
               *(f"--platform={p}" for p in PLATFORMS), *requirements]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, f"the GPU install does not resolve:\n{done.stderr[-3000:]}"
    return json.loads(report.read_text())


def test_gpu_install_resolves_cuda_torch_with_compatible_kernels(gpu_report: dict[str, Any]) -> None:
    installs = {canonicalize_name(i["metadata"]["name"]): i for i in gpu_report["install"]}
    resolved = {name: i["metadata"]["version"] for name, i in installs.items()}
    assert set(STACK) <= set(resolved), f"missing from the GPU install: {set(STACK) - set(resolved)}"
    for name in STACK:  # every pinned package resolves to its pin
        assert pins()[name].specifier.contains(resolved[name], prereleases=True), (name, resolved[name])
    torch = installs["torch"]
    assert Version(resolved["torch"]).local is None, f"a local torch build was chosen: {resolved['torch']}"
    assert "x86_64" in torch["download_info"]["url"].rsplit("/", 1)[-1]
    cuda_deps = [r for r in torch["metadata"]["requires_dist"]
                 if Requirement(r).name.startswith(("nvidia-", "cuda-"))
                 and (Requirement(r).marker is None or Requirement(r).marker.evaluate(TARGET_ENV))]
    assert cuda_deps, "the resolved torch wheel depends on no CUDA library: it is a CPU build"
    assert canonicalize_name(Requirement(cuda_deps[0]).name) in resolved  # and those libraries come along
    # what each package of the stack requires of torch / triton / the others holds for the resolved versions
    checked = {}
    for name, install in installs.items():
        for requirement in install["metadata"].get("requires_dist", []):
            target = canonicalize_name(Requirement(requirement).name)
            if target in STACK and (holds := requirement_holds(requirement, resolved)) is not None:
                assert holds, f"{name} {resolved[name]} requires {requirement}, resolved {target} {resolved[target]}"
                checked[(name, target)] = requirement
    assert ("xformers", "torch") in checked and ("torch", "triton") in checked, checked
    assert ("liger-kernel", "triton") in checked and ("lightning", "torch") in checked, checked


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    out = tmp_path / "gpu_suite.md"
    return subprocess.run([sys.executable, str(SUITE), "--device", "cpu", "--smoke", "--out", str(out),
                           "--root-dir", str(tmp_path / "root"), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_gpu_suite_smoke_runs_every_variant_it_can(tmp_path: Path) -> None:
    done = run_suite(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "gpu_suite.json").read_text())["results"]
    table = (tmp_path / "gpu_suite.md").read_text()
    kernels = {"liger": ["liger_kernel"], "xformers": ["xformers"], "liger+xformers": ["liger_kernel", "xformers"]}
    for name, row in results.items():
        assert f"| {name} |" in table
        if name in kernels and any(importlib.util.find_spec(p) is None for p in kernels[name]):
            assert row["status"] == "not installed", row
            continue
        if name in kernels:  # installed here: it runs, on CPU through the plugins' fallbacks
            assert row["status"] in ("ok", "skipped"), row
            continue
        assert row["status"] == "ok", row
        assert row["steps"] == 2 and len(row["losses"]) == 2 and row["tokens_per_s"] > 0, row
        assert all(0 < loss < 20 for loss in row["losses"]), row
    assert set(results) == {"plain", "liger", "xformers", "liger+xformers", "fsp", "s2d", "s2d-all"}
    assert results["plain"]["max_loss_gap"] == 0.0
    # FSP's loss term moves the shared trunk, so the second step's lm differs from plain's: the gap is real
    assert results["fsp"]["max_loss_gap"] > 0
    assert results["s2d-all"]["s2d_selected_layers"] > 0 and results["s2d-all"]["refresh_s"] > 0
    assert "MFU n/a" in table  # no bf16 peak for a CPU


def test_gpu_suite_writes_its_table_when_the_budget_is_spent(tmp_path: Path) -> None:
    done = run_suite(tmp_path, "--budget-s", "0")
    assert done.returncode == 1  # nothing measured: plain is the reference of every ratio
    results = json.loads((tmp_path / "gpu_suite.json").read_text())["results"]
    assert results["plain"] == {"status": "not run", "why": "the time budget is spent"}
    assert all(r["status"] in ("not run", "not installed") for r in results.values()), results
    assert "| plain | - | - |" in (tmp_path / "gpu_suite.md").read_text()


def test_mfu_peak_is_looked_up_by_device_name(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    suite = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_suite", suite)  # its dataclasses look their module up there
    spec.loader.exec_module(suite)
    assert suite.peak_bf16_flops("NVIDIA H100 80GB HBM3") == 989e12  # SXM
    assert suite.peak_bf16_flops("NVIDIA H100 PCIe") == 756e12  # not the SXM figure
    assert suite.peak_bf16_flops("NVIDIA H200") == 989e12
    assert suite.peak_bf16_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert suite.peak_bf16_flops("Tesla T4") is None  # unknown: MFU n/a, never a guess
