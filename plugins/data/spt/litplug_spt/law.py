"""The paper's overfitting scaling law (Eq. 1-6 of arXiv 2603.16177) and its least-squares fit.

    L_train(T, d) = A_train * T^b_train(d) + C_train(d)          (domain loss on data it trains on)
    L_gap(T, d)   = A_gap(d) * T^b_gap(d)                        (held-out minus training loss)
    L_test        = L_train + L_gap
    b_x(d)        = d * b_x_s + (1 - d) * b_x_g                   for x in {train, gap}
    A_gap(d)      = alpha1 * d^alpha2 * exp(alpha3 * d)          (a Gamma-kernel shape, 0 at d = 0)
    C_train(d)    = kappa0 - kappa1 * log(d + kappa2) - kappa3 * d

T is counted in ``token_unit`` tokens (1e6 by default) so the amplitudes are well scaled. As in the
paper the forms are first fitted per delta (A_d T^b_d + C_d, and A_d T^b_d for the gap) to start the
joint fit, then every parameter is fitted jointly by least squares (scipy), L_train and L_gap each
on their own measurements. Sign constraints (bounds): b_train_s, b_train_g < 0; b_gap_g < 0 < b_gap_s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import least_squares

from litplug.api import ConfigError

TRAIN_PARAMS = ("A_train", "b_train_s", "b_train_g", "kappa0", "kappa1", "kappa2", "kappa3")
GAP_PARAMS = ("alpha1", "alpha2", "alpha3", "b_gap_s", "b_gap_g")
# Distinct delta values the delta-dependent parts need: C_train has kappa0..3, A_gap has alpha1..3 (d > 0).
MIN_DELTAS, MIN_POSITIVE_DELTAS, MIN_POINTS_PER_CURVE = 4, 3, 3
_BOUNDS = {
    "A_train": (1e-12, np.inf), "b_train_s": (-5.0, 0.0), "b_train_g": (-5.0, 0.0),
    "kappa0": (-np.inf, np.inf), "kappa1": (-np.inf, np.inf), "kappa2": (1e-8, 10.0), "kappa3": (-np.inf, np.inf),
    "alpha1": (1e-12, np.inf), "alpha2": (1e-6, 10.0), "alpha3": (-1e3, 1e3),
    "b_gap_s": (0.0, 100.0), "b_gap_g": (-5.0, 0.0),
}


@dataclass(eq=False)  # compared by identity: the fields are arrays
class Curve:
    """Domain losses of one pretraining run (or several seeds at one delta) against tokens."""

    delta: float
    tokens: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    label: str = ""


@dataclass
class Law:
    """Fitted parameters; T in units of ``token_unit`` tokens."""

    A_train: float
    b_train_s: float
    b_train_g: float
    kappa0: float
    kappa1: float
    kappa2: float
    kappa3: float
    alpha1: float
    alpha2: float
    alpha3: float
    b_gap_s: float
    b_gap_g: float
    token_unit: float = 1e6

    def _t(self, tokens: np.ndarray | float) -> np.ndarray:
        return np.asarray(tokens, dtype=float) / self.token_unit

    def b_train(self, delta: np.ndarray | float) -> np.ndarray:
        return np.asarray(delta) * self.b_train_s + (1 - np.asarray(delta)) * self.b_train_g

    def b_gap(self, delta: np.ndarray | float) -> np.ndarray:
        return np.asarray(delta) * self.b_gap_s + (1 - np.asarray(delta)) * self.b_gap_g

    def c_train(self, delta: np.ndarray | float) -> np.ndarray:
        d = np.asarray(delta, dtype=float)
        return self.kappa0 - self.kappa1 * np.log(d + self.kappa2) - self.kappa3 * d

    def a_gap(self, delta: np.ndarray | float) -> np.ndarray:
        d = np.asarray(delta, dtype=float)
        return self.alpha1 * d**self.alpha2 * np.exp(self.alpha3 * d)

    def train_loss(self, tokens: np.ndarray | float, delta: np.ndarray | float) -> np.ndarray:
        return self.A_train * self._t(tokens) ** self.b_train(delta) + self.c_train(delta)

    def gap(self, tokens: np.ndarray | float, delta: np.ndarray | float) -> np.ndarray:
        return self.a_gap(delta) * self._t(tokens) ** self.b_gap(delta)

    def test_loss(self, tokens: np.ndarray | float, delta: np.ndarray | float) -> np.ndarray:
        return self.train_loss(tokens, delta) + self.gap(tokens, delta)

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class Fit:
    law: Law
    rmse_train: float
    rmse_gap: float
    rmse_test: float
    per_delta: dict[float, dict[str, float]] = field(default_factory=dict)


def check_curves(curves: list[Curve]) -> None:
    """Enough runs to identify every parameter, or a ConfigError that says what to add."""
    missing = [c.label or "?" for c in curves if c.delta is None or not np.isfinite(c.delta)]
    if missing:
        raise ConfigError(f"fit-law: curve(s) {', '.join(missing)} have no delta; every pilot run needs "
                          "plugins.spt.delta (or a `delta` column in CSV input).")
    short = [c.label or str(c.delta) for c in curves if len(c.tokens) < MIN_POINTS_PER_CURVE]
    if short:
        raise ConfigError(f"fit-law: curve(s) {', '.join(short)} have fewer than {MIN_POINTS_PER_CURVE} points "
                          "(validations); validate more often (trainer.val_check_interval) in the pilot runs.")
    deltas = sorted({float(c.delta) for c in curves})
    positive = [d for d in deltas if d > 0]
    if len(deltas) < MIN_DELTAS or len(positive) < MIN_POSITIVE_DELTAS:
        raise ConfigError(
            f"fit-law needs pilot runs at >= {MIN_DELTAS} distinct delta values, >= {MIN_POSITIVE_DELTAS} of them "
            f"above 0 (C_train(delta) has 4 parameters kappa0..3 and A_gap(delta) has 3, alpha1..3); got "
            f"{len(curves)} run(s) at delta = {', '.join(f'{d:g}' for d in deltas)}. Add pilot runs at more deltas."
        )


def _pooled(curves: list[Curve], token_unit: float) -> tuple[np.ndarray, ...]:
    t = np.concatenate([c.tokens for c in curves]).astype(float) / token_unit
    d = np.concatenate([np.full(len(c.tokens), float(c.delta)) for c in curves])
    y_train = np.concatenate([c.train_loss for c in curves]).astype(float)
    y_test = np.concatenate([c.test_loss for c in curves]).astype(float)
    return t, d, y_train, y_test


def _clip(x0: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    lo = np.array([_BOUNDS[n][0] for n in names])
    hi = np.array([_BOUNDS[n][1] for n in names])
    span = np.where(np.isfinite(hi - lo), (hi - lo) * 1e-6, 1e-6)
    return np.clip(x0, lo + span, hi - span)


def _bounds(names: tuple[str, ...]) -> tuple[list[float], list[float]]:
    return [_BOUNDS[n][0] for n in names], [_BOUNDS[n][1] for n in names]


def _fit_power_plus_const(t: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """y = A t^b + C with A > 0, b < 0: best of a few starts."""
    best = None
    for b0 in (-0.1, -0.3, -1.0):
        c0 = float(y.min()) - 0.1 * float(np.ptp(y) + 1e-3)
        a0 = max(float(y.max() - c0), 1e-6) * float(t.min()) ** (-b0)
        res = least_squares(lambda p: p[0] * t ** p[1] + p[2] - y, [a0, b0, c0],
                            bounds=([1e-12, -5.0, -np.inf], [np.inf, 0.0, np.inf]), x_scale="jac")
        if best is None or res.cost < best.cost:
            best = res
    return tuple(float(v) for v in best.x)  # type: ignore[union-attr,return-value]


def _fit_power(t: np.ndarray, g: np.ndarray) -> tuple[float, float]:
    """g = A t^b with A > 0 (log-linear start where g > 0, then least squares on g itself)."""
    pos = g > 0
    if pos.sum() >= 2 and np.ptp(np.log(t[pos])) > 0:
        b0, log_a0 = np.polyfit(np.log(t[pos]), np.log(g[pos]), 1)
    else:
        b0, log_a0 = 0.0, np.log(max(float(np.abs(g).mean()), 1e-6))
    res = least_squares(lambda p: p[0] * t ** p[1] - g, [float(np.exp(log_a0)), float(np.clip(b0, -4.9, 4.9))],
                        bounds=([1e-12, -5.0], [np.inf, 5.0]), x_scale="jac")
    return float(res.x[0]), float(res.x[1])


def _fit_c_train(deltas: np.ndarray, c: np.ndarray) -> tuple[float, float, float, float]:
    """C(d) = k0 - k1 log(d + k2) - k3 d: linear in (k0, k1, k3) for fixed k2, so scan k2."""
    best: tuple[float, tuple[float, float, float, float]] | None = None
    for k2 in np.logspace(-6, 1, 141):
        design = np.stack([np.ones_like(deltas), -np.log(deltas + k2), -deltas], axis=1)
        coef, *_ = np.linalg.lstsq(design, c, rcond=None)
        err = float(np.sum((design @ coef - c) ** 2))
        if best is None or err < best[0]:
            best = (err, (float(coef[0]), float(coef[1]), float(k2), float(coef[2])))
    return best[1]  # type: ignore[index]


def _line(deltas: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """b(d) = d b_s + (1 - d) b_g from per-delta exponents: returns (b_s, b_g)."""
    slope, intercept = np.polyfit(deltas, b, 1) if np.ptp(deltas) > 0 else (0.0, float(b.mean()))
    return float(intercept + slope), float(intercept)


def fit_law(curves: list[Curve], token_unit: float = 1e6) -> Fit:
    """Fit the law to pilot curves (several seeds per delta are pooled)."""
    check_curves(curves)
    t, d, y_train, y_test = _pooled(curves, token_unit)
    gap = y_test - y_train
    deltas = np.array(sorted(set(d.tolist())))
    per_delta: dict[float, dict[str, float]] = {}
    for delta in deltas:
        m = d == delta
        a, b, c = _fit_power_plus_const(t[m], y_train[m])
        per_delta[float(delta)] = {"A_train": a, "b_train": b, "C_train": c}
        if delta > 0:
            ag, bg = _fit_power(t[m], gap[m])
            per_delta[float(delta)].update({"A_gap": ag, "b_gap": bg})
    pos = deltas[deltas > 0]

    # joint fit of L_train, started from the per-delta fits
    b_s, b_g = _line(deltas, np.array([per_delta[x]["b_train"] for x in deltas]))
    kappas = _fit_c_train(deltas, np.array([per_delta[x]["C_train"] for x in deltas]))
    a_train = float(np.exp(np.mean(np.log([per_delta[x]["A_train"] for x in deltas]))))
    x0 = _clip(np.array([a_train, b_s, b_g, *kappas]), TRAIN_PARAMS)

    def train_residual(p: np.ndarray) -> np.ndarray:
        law = _law(p, np.zeros(len(GAP_PARAMS)), token_unit)
        return law.train_loss(t * token_unit, d) - y_train

    train = least_squares(train_residual, x0, bounds=_bounds(TRAIN_PARAMS), x_scale="jac", max_nfev=20000)

    # joint fit of L_gap on the runs with delta > 0
    a_gaps = np.array([per_delta[x]["A_gap"] for x in pos])
    design = np.stack([np.ones_like(pos), np.log(pos), pos], axis=1)
    (log_a1, a2, a3), *_ = np.linalg.lstsq(design, np.log(a_gaps), rcond=None)
    bg_s, bg_g = _line(pos, np.array([per_delta[x]["b_gap"] for x in pos]))
    g0 = _clip(np.array([np.exp(log_a1), a2, a3, bg_s, bg_g]), GAP_PARAMS)
    m = d > 0

    def gap_residual(p: np.ndarray) -> np.ndarray:
        law = _law(train.x, p, token_unit)
        return law.gap(t[m] * token_unit, d[m]) - gap[m]

    gap_fit = least_squares(gap_residual, g0, bounds=_bounds(GAP_PARAMS), x_scale="jac", max_nfev=20000)
    law = _law(train.x, gap_fit.x, token_unit)
    rmse = lambda r: float(np.sqrt(np.mean(np.square(r))))  # noqa: E731
    return Fit(law=law, rmse_train=rmse(train.fun), rmse_gap=rmse(gap_fit.fun),
               rmse_test=rmse(law.test_loss(t * token_unit, d) - y_test), per_delta=per_delta)


def _law(train_p: np.ndarray, gap_p: np.ndarray, token_unit: float) -> Law:
    values = dict(zip(TRAIN_PARAMS, map(float, train_p))) | dict(zip(GAP_PARAMS, map(float, gap_p)))
    return Law(**values, token_unit=token_unit)


def recommend_delta(law: Law, tokens: float, delta_max: float, num: int = 2001) -> tuple[float, float]:
    """The delta in [0, delta_max] with the lowest predicted held-out domain loss after ``tokens``."""
    grid = np.linspace(0.0, delta_max, num)
    losses = law.test_loss(np.full_like(grid, tokens), grid)
    i = int(np.nanargmin(losses))
    return float(grid[i]), float(losses[i])
