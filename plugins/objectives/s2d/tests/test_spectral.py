"""The math of S2D against dense references: gradient, L2 limit, refresh, selection, a toy run."""

from __future__ import annotations

import pytest
import torch
from litplug_s2d.config import S2DConfig
from litplug_s2d.quant import fake_quant_tokens, fake_quant_weight
from litplug_s2d.regularizer import SpectralDecay
from litplug_s2d.spectral import (
    pcdr,
    penalty,
    select_by_mass,
    select_by_pcdr,
    sigma_hat,
    top_components,
)


def matrix_with_spectrum(sigma: list[float], seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = len(sigma)
    q1, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return ((q1 * torch.tensor(sigma, dtype=torch.float64)) @ q2.T).to(dtype)


def analytic_grad(w: torch.Tensor, k: int, lam: float, power: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty, dpenalty/dW) through the cached-vector proxy, right after a refresh."""
    u, _, v = top_components(w, k)
    w = w.clone().requires_grad_(True)
    value = penalty(sigma_hat(w, u, v), lam, power)
    (grad,) = torch.autograd.grad(value, w)
    return value.detach(), grad


@pytest.mark.parametrize("power", [2.0, 3.0])
def test_gradient_matches_finite_differences_of_the_svdvals_penalty(power: float) -> None:
    lam, k = 0.3, 3
    w = matrix_with_spectrum([8.0, 5.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.4])

    def exact(m: torch.Tensor) -> torch.Tensor:
        return lam / (power + 1) * torch.linalg.svdvals(m)[:k].pow(power + 1).sum()

    value, grad = analytic_grad(w, k, lam, power)
    eps = 1e-6
    numeric = torch.zeros_like(w)
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            step = torch.zeros_like(w)
            step[i, j] = eps
            numeric[i, j] = (exact(w + step) - exact(w - step)) / (2 * eps)
    torch.testing.assert_close(value, exact(w), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, numeric, rtol=1e-4, atol=1e-8)
    # and it is lambda * sum sigma_i^n u_i v_i^T, i.e. L2's sigma replaced by sigma^n
    u, s, vh = torch.linalg.svd(w)
    torch.testing.assert_close(grad, lam * (u[:, :k] * s[:k].pow(power)) @ vh[:k], rtol=1e-10, atol=1e-12)


def test_power_one_over_the_full_rank_is_l2_decay() -> None:
    lam = 0.05
    w = matrix_with_spectrum([4.0, 3.0, 2.5, 2.0, 1.0, 0.5], seed=1)
    value, grad = analytic_grad(w, w.shape[0], lam, power=1.0)
    torch.testing.assert_close(value, lam / 2 * w.square().sum(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, lam * w, rtol=1e-10, atol=1e-12)


def test_right_after_a_refresh_sigma_hat_equals_sigma(tiny_model: torch.nn.Module) -> None:
    decay = SpectralDecay(tiny_model, ["model.layers.0.mlp.up_proj", "model.layers.1.self_attn.o_proj"],
                          S2DConfig(k_max=3, selection="sigma_mass"))
    assert decay.due(0) and not decay.due(1)
    decay.refresh(tiny_model, step=0)
    assert not decay.due(0), "a second micro-batch of step 0 (gradient accumulation) must not refresh again"
    assert decay.due(100) and not decay.due(99)
    for name, cache in zip(decay.names, decay.caches):
        w = tiny_model.get_submodule(name).weight
        torch.testing.assert_close(sigma_hat(w, cache.u, cache.v), cache.sigma, rtol=0, atol=1e-6)
        torch.testing.assert_close(cache.sigma, torch.linalg.svdvals(w)[:3], rtol=1e-6, atol=1e-6)
    assert int(decay.refreshes) == 1


def test_flat_spectrum_is_not_selected_and_rank_one_dominated_is_with_k_one() -> None:
    flat = 2.0 * matrix_with_spectrum([1.0] * 16)  # an orthogonal matrix times c
    spiked = matrix_with_spectrum([200.0] + [0.5] * 15)
    for mass_power in (1, 2):
        assert select_by_mass(torch.linalg.svdvals(flat), 0.95, 3, mass_power) == 0
        assert select_by_mass(torch.linalg.svdvals(spiked), 0.95, 3, mass_power) == 1
    # the activation rule agrees: PCDR_1 of the spiked layer's outlier activations is ~1
    x = torch.randn(256, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for w, expected in ((flat, 0), (spiked, 1)):
        u, s, v = top_components(w, 3)
        assert select_by_pcdr(pcdr(x, u, s[:3], v, w, 0.99), 0.95) == expected


def train_toy(lam: float, steps: int = 200) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least squares onto a teacher with 3 dominant singular values, from the teacher itself (the
    unregularised optimum), with the real SpectralDecay refreshed every 10 steps. Returns the weight,
    the inputs and the S2D state's final k_targets."""
    teacher = matrix_with_spectrum([20.0, 15.0, 10.0] + [1.0] * 13, dtype=torch.float32)
    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(1))
    net = torch.nn.Sequential(torch.nn.Linear(16, 16, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(teacher)
    decay = SpectralDecay(net, ["0"], S2DConfig(lam=lam, tau=0.5, refresh_every=10, selection="sigma_mass"))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for step in range(steps):
        if decay.due(step):
            decay.refresh(net, step)
        loss = torch.nn.functional.mse_loss(net(x), x @ teacher.T) + decay(net)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net[0].weight.detach(), x, torch.tensor(decay.k_targets)


def test_toy_s2d_lowers_sigma_max_and_leaves_the_small_singular_values() -> None:
    w_plain, x, _ = train_toy(lam=0.0)
    w_s2d, _, k_targets = train_toy(lam=5e-3)
    assert k_targets.tolist() == [2]  # top-2 share of sum(sigma) first reaches tau=0.5
    s_plain, s_s2d = torch.linalg.svdvals(w_plain), torch.linalg.svdvals(w_s2d)
    shrink = 1 - s_s2d / s_plain
    assert shrink[0] > 0.1  # sigma_max: 20 -> ~17
    assert shrink[-13:].abs().max() < 1e-3  # the unselected tail is untouched (L2 would shrink it too)

    def outlier_ratio_and_w4a4_error(w: torch.Tensor) -> tuple[float, float]:
        out = x @ w.T
        quantised = fake_quant_tokens(x, 4) @ fake_quant_weight(w, 0, 4).T
        return float(out.abs().max() / out.std()), float((quantised - out).norm() / out.norm())

    ratio_plain, err_plain = outlier_ratio_and_w4a4_error(w_plain)
    ratio_s2d, err_s2d = outlier_ratio_and_w4a4_error(w_s2d)
    assert ratio_s2d < ratio_plain
    assert err_s2d < err_plain
