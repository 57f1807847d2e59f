"""The fit-law figure: measured vs fitted curves, and the predicted held-out loss against delta."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from litplug_spt.law import Curve, Law  # noqa: E402


def plot_fit(law: Law, curves: list[Curve], budgets: list[float], delta_max: float, out: Path) -> Path:
    deltas = sorted({c.delta for c in curves})
    colours = {d: plt.cm.viridis(i / max(len(deltas) - 1, 1)) for i, d in enumerate(deltas)}
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.6))
    t_min = min(float(c.tokens.min()) for c in curves)
    t_max = max([float(c.tokens.max()) for c in curves] + list(budgets))
    grid = np.logspace(np.log10(t_min), np.log10(t_max), 200)
    for ax, what, title in ((axes[0], "train", "L_train: domain loss on its training split"),
                            (axes[1], "test", "L_test: held-out domain loss")):
        for d in deltas:
            for c in (c for c in curves if c.delta == d):
                ax.plot(c.tokens, c.train_loss if what == "train" else c.test_loss, "o", ms=3, alpha=0.6,
                        color=colours[d])
            fitted = law.train_loss(grid, d) if what == "train" else law.test_loss(grid, d)
            ax.plot(grid, fitted, "-", color=colours[d], label=f"δ={d:g}")
        ax.set_xscale("log")
        ax.set_xlabel("pretraining tokens T")
        ax.set_ylabel("loss")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    ax = axes[2]
    delta_grid = np.linspace(0, delta_max, 400)
    for budget in budgets:
        losses = law.test_loss(np.full_like(delta_grid, budget), delta_grid)
        i = int(np.nanargmin(losses))
        ax.plot(delta_grid, losses, label=f"T={budget:.3g}")
        ax.plot(delta_grid[i], losses[i], "k*", ms=9)
    ax.set_xlabel("δ (domain share)")
    ax.set_ylabel("predicted held-out domain loss")
    ax.set_title("prediction at the token budgets (★ = recommended δ)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
