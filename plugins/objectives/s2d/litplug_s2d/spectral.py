"""The math of S2D on one [out, in] matrix: top singular triplets, the two selection rules, the penalty.

All functions are pure (no module state), so the tests check them against dense references.
"""

from __future__ import annotations

import torch


def top_components(matrix: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U [k, out], S [all], V [k, in])``: the top-k singular vectors as rows, and every singular value.

    A full (thin) SVD, as in the paper; it runs once per refresh, so its cost is amortised over m steps.
    """
    m = matrix.detach()
    u, s, vh = torch.linalg.svd(m if m.dtype == torch.float64 else m.float(), full_matrices=False)
    return u[:, :k].t().contiguous(), s, vh[:k].contiguous()


def select_by_mass(sigma: torch.Tensor, tau: float, k_max: int, mass_power: int = 1) -> int:
    """Smallest k <= k_max whose top-k share sum_{i<=k} sigma_i^p / sum_i sigma_i^p reaches tau; 0 if none
    (a healthy layer: no penalty). ``sigma`` is sorted descending."""
    mass = sigma.double().pow(mass_power)
    share = mass.cumsum(0)[:k_max] / mass.sum().clamp_min(torch.finfo(torch.float64).tiny)
    hits = (share >= tau).nonzero()
    return int(hits[0]) + 1 if len(hits) else 0


def pcdr(inputs: torch.Tensor, u: torch.Tensor, sigma: torch.Tensor, v: torch.Tensor, matrix: torch.Tensor,
         outlier_quantile: float) -> torch.Tensor:
    """PCDR_k for k = 1..K: mean over outlier activations of |sum_{r<=k} sigma_r u_r v_r^T x| / |W x|.

    ``inputs`` [N, in] are the layer's input rows; ``u`` [K, out], ``v`` [K, in], ``sigma`` [K]. Outliers are
    the entries of A = X W^T whose |A| is at or above the ``outlier_quantile`` of |A| (0 = every entry). A
    ratio above 1 (top components overshoot and the rest cancel) is clipped to 1 so one entry cannot
    dominate the mean.
    """
    x = inputs.to(u.dtype)
    full = x @ matrix.detach().to(u.dtype).t()  # [N, out]
    magnitude = full.abs().flatten()
    threshold = torch.quantile(magnitude, outlier_quantile) if outlier_quantile > 0 else magnitude.new_zeros(())
    outliers = full.abs() >= threshold
    coeff = (x @ v.t()) * sigma  # [N, K]: sigma_r v_r^T x
    partial = torch.cumsum(coeff.unsqueeze(-1) * u.unsqueeze(0), dim=1)  # [N, K, out]: top-r sums
    ratio = (partial.abs() / full.abs().unsqueeze(1).clamp_min(1e-12)).clamp(max=1.0)
    mask = outliers.unsqueeze(1).expand_as(ratio)
    return (ratio * mask).sum(dim=(0, 2)) / mask[:, 0].sum().clamp_min(1)


def select_by_pcdr(pcdr_k: torch.Tensor, tau: float) -> int:
    """Smallest k with PCDR_k >= tau; 0 if none."""
    hits = (pcdr_k >= tau).nonzero()
    return int(hits[0]) + 1 if len(hits) else 0


def sigma_hat(matrix: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """sigma_hat_i = u_i^T W v_i with cached u, v: differentiable in W, d sigma_hat_i / dW = u_i v_i^T."""
    return ((u @ matrix) * v).sum(-1)


def penalty(sigma_hat_: torch.Tensor, lam: float, power: float) -> torch.Tensor:
    """lambda/(n+1) * sum_i sigma_hat_i^(n+1) over the selected components, whose gradient is
    lambda * sigma_hat_i^n u_i v_i^T.

    This has the same gradient as the detached-coefficient surrogate lambda * sum sg(sigma_hat^n) * sigma_hat,
    but its value is the paper's penalty, so the logged loss term means what it says.
    """
    return lam / (power + 1) * sigma_hat_.clamp_min(0).pow(power + 1).sum()
