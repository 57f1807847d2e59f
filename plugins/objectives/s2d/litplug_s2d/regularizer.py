"""The S2D state (cached top singular vectors and each layer's selection) and the penalty computed from it.

It is an ``nn.Module`` registered through ``configure_model`` as the auxiliary module ``s2d``: its buffers
move to the device with the model and go into every checkpoint (so a resumed run reuses exactly the
vectors an uninterrupted run would), and auxiliary modules are never exported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from litplug_s2d.config import S2DConfig
from litplug_s2d.layers import out_in_weight
from litplug_s2d.spectral import pcdr, penalty, select_by_mass, select_by_pcdr, sigma_hat, top_components

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class LayerCache(torch.nn.Module):
    """Top-K_max singular triplets of one layer at the last refresh; ``mask[i]`` = 1 for i < k_target."""

    def __init__(self, out_features: int, in_features: int, k_max: int) -> None:
        super().__init__()
        self.register_buffer("u", torch.zeros(k_max, out_features))
        self.register_buffer("v", torch.zeros(k_max, in_features))
        self.register_buffer("sigma", torch.zeros(k_max))
        self.register_buffer("mask", torch.zeros(k_max))


class SpectralDecay(torch.nn.Module):
    """Refreshes the cache every m steps; in between, the penalty uses sigma_hat_i = u_i^T W v_i."""

    def __init__(self, model: PreTrainedModel, names: list[str], cfg: S2DConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.names = list(names)
        shapes = [out_in_weight(model.get_submodule(n)).shape for n in self.names]
        self.caches = torch.nn.ModuleList(LayerCache(o, i, cfg.k_max) for o, i in shapes)
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))  # SVD refreshes so far
        self.last_refresh_step = -1  # dedups the refresh across gradient-accumulation micro-batches
        self._k: list[int] | None = None  # python mirror of the masks (None: re-read after a checkpoint load)
        self.register_load_state_dict_post_hook(_forget_k_targets)

    # -- selection ----------------------------------------------------------------------------------
    @property
    def k_targets(self) -> list[int]:
        """k_target of each layer (0 = healthy, not penalised)."""
        if self._k is None:
            self._k = [int(c.mask.sum().item()) for c in self.caches]
        return self._k

    def due(self, step: int) -> bool:
        return step % self.cfg.refresh_every == 0 and step != self.last_refresh_step

    @torch.no_grad()
    def refresh(self, model: PreTrainedModel, step: int, batch: dict[str, torch.Tensor] | None = None) -> None:
        """Full SVD of every candidate, then each layer's k_target by the configured rule."""
        cfg = self.cfg
        layers = [model.get_submodule(n) for n in self.names]
        inputs = capture_inputs(model, layers, batch, cfg.pcdr_rows, step) if cfg.selection == "pcdr" else None
        ks = []
        for i, (layer, cache) in enumerate(zip(layers, self.caches)):
            matrix = out_in_weight(layer)
            u, s, v = top_components(matrix, cfg.k_max)
            top = u.shape[0]  # min(k_max, rank bound)
            if cfg.selection == "all":
                k = top
            elif cfg.selection == "sigma_mass":
                k = select_by_mass(s, cfg.tau, cfg.k_max, cfg.mass_power)
            else:
                k = select_by_pcdr(pcdr(inputs[i], u, s[:top], v, matrix, cfg.pcdr_outlier_quantile), cfg.tau)
            for buf in (cache.u, cache.v, cache.sigma, cache.mask):
                buf.zero_()
            cache.u[:top].copy_(u)
            cache.v[:top].copy_(v)
            cache.sigma[:top].copy_(s[:top])
            cache.mask[:k] = 1.0
            ks.append(k)
        self._k = ks
        self.refreshes += 1
        self.last_refresh_step = step

    # -- penalty ------------------------------------------------------------------------------------
    def forward(self, model: PreTrainedModel) -> tuple[torch.Tensor, torch.Tensor]:
        """(penalty, max sigma_hat over the selected layers). Computed in fp32 outside autocast, so mixed
        precision rounds neither sigma_hat nor its power; the layers' estimates are concatenated so the
        power and sum run once, keeping the per-step cost a few small ops per layer."""
        device = self.refreshes.device
        estimates = []
        with torch.autocast(device_type=device.type, enabled=False):
            for name, cache, k in zip(self.names, self.caches, self.k_targets):
                if k == 0:
                    continue
                # at least fp32, whatever the run's precision: under `bf16-true` / `64-true` Lightning casts
                # the weights *and* these cached buffers to the run dtype
                weight = out_in_weight(model.get_submodule(name))
                acc = torch.promote_types(weight.dtype, torch.float32)
                estimates.append(sigma_hat(weight.to(acc), cache.u[:k].to(acc), cache.v[:k].to(acc)))
            if not estimates:
                zero = torch.zeros((), device=device)
                return zero, zero
            stacked = torch.cat(estimates).float()
            return penalty(stacked, self.cfg.lam, self.cfg.power), stacked.detach().max()


def _forget_k_targets(module: SpectralDecay, incompatible_keys: Any) -> None:
    module._k = None


@torch.no_grad()
def capture_inputs(model: PreTrainedModel, layers: list[torch.nn.Module], batch: dict[str, torch.Tensor] | None,
                   rows: int, step: int) -> list[torch.Tensor]:
    """Input rows [<=rows, in] of each layer on the batch's real tokens (one extra forward in eval mode,
    so dropout draws no random numbers and the training run's RNG stream is untouched)."""
    if batch is None:
        raise ValueError("selection 'pcdr' needs a batch to capture activations from")
    captured: list[list[torch.Tensor]] = [[] for _ in layers]

    def hook(index: int) -> Any:
        return lambda module, args: captured[index].append(args[0].detach().reshape(-1, args[0].shape[-1]))

    handles = [layer.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    was_training = model.training
    try:
        model.eval()
        model.base_model(input_ids=batch["input_ids"])
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    real = batch["attention_mask"].reshape(-1).bool() if "attention_mask" in batch else None
    generator = torch.Generator().manual_seed(step)
    out = []
    for chunks in captured:
        x = torch.cat(chunks)
        if real is not None and real.numel() == x.shape[0]:
            x = x[real.to(x.device)]
        if x.shape[0] > rows:
            x = x[torch.randperm(x.shape[0], generator=generator)[:rows].to(x.device)]
        out.append(x)
    return out
