"""Sign-fixed tuning inside a real litplug run: the invariant holds after every optimizer step,
and re-running a task reproduces its task vector bit for bit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from litplug_sift_masks.projection import SignProjector
from litplug_sift_masks.signs import sign_positive
from safetensors.torch import load_file


class _Checker:
    """Counts, at every step, the entries of tau = theta - theta_0 that disagree with v."""

    def __init__(self) -> None:
        self.disagree: list[int] = []
        self.moved: list[int] = []

    def record(self, projector: SignProjector, named: list[tuple[str, torch.nn.Parameter]]) -> None:
        bad = moved = 0
        for name, param in named:
            if name not in projector.theta0:  # frozen: never projected
                continue
            tau = param.detach() - projector.theta0[name]
            bad += int(torch.where(sign_positive(name, tau.shape, projector.seed), tau < 0, tau > 0).sum())
            moved += int((tau != 0).sum())
        self.disagree.append(bad)
        self.moved.append(moved)


def test_projection_holds_after_every_step(tmp_path: Path, litplug_data_cache: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from litplug.api import setup_run, train_run
    from litplug.testing import TINY_OVERRIDES, plugin_overrides

    # The projection runs in after_optimizer_step, right after the optimizer moved the weights: record
    # tau just before it (what the optimizer did) and just after it (what the step leaves).
    before, after = _Checker(), _Checker()
    project = SignProjector.project_

    def checked(self: SignProjector, named: Any, optimizer: Any = None) -> Any:
        named = list(named)
        before.record(self, named)
        result = project(self, named, optimizer)
        after.record(self, named)
        return result

    monkeypatch.setattr(SignProjector, "project_", checked)
    run = setup_run(None, [*TINY_OVERRIDES, f"run.output_dir={tmp_path}", f"data.cache_dir={litplug_data_cache}",
                           "optim.warmup_steps=0", *plugin_overrides({"sift_masks": {"sign_seed": 5}})])
    train_run(run)
    assert len(after.disagree) == 4
    assert all(b > 0 for b in before.disagree), "the optimizer never moved against v: this check could not fail"
    assert after.disagree == [0, 0, 0, 0]
    assert all(m > 0 for m in after.moved)
    # the exported model is the projected one
    assert run.module is not None
    projector = run.plugins["sift_masks"].projector
    for name, param in run.module.model.named_parameters():
        if name not in projector.theta0:  # frozen (the default: embeddings, LM head): never moves
            assert not param.requires_grad
            continue
        tau = param.detach() - projector.theta0[name]
        assert not torch.where(sign_positive(name, tau.shape, 5), tau < 0, tau > 0).any()


def _task_vector(run_dir: Path, base: Path) -> dict[str, torch.Tensor]:
    tuned, theta0 = load_file(run_dir / "export" / "model.safetensors"), load_file(base / "model.safetensors")
    return {n: tuned[n] - theta0[n] for n in theta0}


def test_rerunning_a_task_reproduces_its_vector(sift_runs: dict[str, Path],
                                                train_sift_task: Callable[..., Path]) -> None:
    again = train_sift_task(sift_runs["add"].parent / "again", "add", 1)
    first, second = _task_vector(sift_runs["add"], sift_runs["base"]), _task_vector(again, sift_runs["base"])
    assert all(torch.equal(first[n], second[n]) for n in first)
    assert any(bool((t != 0).any()) for t in first.values())
    other = _task_vector(sift_runs["mul"], sift_runs["base"])
    assert not all(torch.equal(first[n], other[n]) for n in first)


def test_reset_momentum_zeroes_adams_first_moment_only_where_reset() -> None:
    from litplug_sift_masks.projection import SignProjector

    param = torch.nn.Parameter(torch.zeros(256))
    optimizer = torch.optim.Adam([param], lr=0.1)
    projector = SignProjector({"w": param.detach()}, seed=0)
    param.grad = torch.randn(256, generator=torch.Generator().manual_seed(0))
    optimizer.step()
    against = torch.where(sign_positive("w", (256,), 0), param.detach() < 0, param.detach() > 0)
    assert 0 < int(against.sum()) < 256
    reset, nonzero, total = projector.project_([("w", param)], optimizer)
    assert (reset, nonzero, total) == (int(against.sum()), 256 - int(against.sum()), 256)
    assert (param.detach()[against] == 0).all() and (param.detach()[~against] != 0).all()
    first_moment = optimizer.state[param]["exp_avg"]
    assert (first_moment[against] == 0).all() and (first_moment[~against] != 0).all()
