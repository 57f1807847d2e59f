"""RMSNorm / RoPE / SwiGLU through Liger's own ``apply_liger_kernel_to_<arch>(model=...)`` functions."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any

from transformers import PreTrainedModel

log = logging.getLogger("litplug.liger")


def patch_model(model: PreTrainedModel, apply_fns: Mapping[str, Callable[..., Any]], kernels: dict[str, bool]) -> bool:
    """Patch ``model`` in place with the requested ``kernels`` (``{"rms_norm": True, ...}``).

    Liger's loss patches stay off: the loss goes through litplug's ``lm_loss`` hook, not ``forward``.
    :return: False (after a warning naming the architecture) when Liger has no kernels for it.
    """
    model_type = model.config.model_type
    apply_fn = apply_fns.get(model_type)
    if apply_fn is None:
        log.warning("litplug-liger: Liger has no kernels for architecture '%s' (it supports: %s); RMSNorm/RoPE/"
                    "SwiGLU stay unpatched and training continues.", model_type, ", ".join(sorted(apply_fns)))
        return False
    accepted = inspect.signature(apply_fn).parameters
    missing = [name for name, wanted in kernels.items() if wanted and name not in accepted]
    if missing:
        log.warning("litplug-liger: Liger's %s takes no %s option; those stay unpatched for '%s'.",
                    apply_fn.__name__, "/".join(missing), model_type)
    options = {name: wanted for name, wanted in kernels.items() if name in accepted}
    options.update({name: False for name in ("cross_entropy", "fused_linear_cross_entropy") if name in accepted})
    apply_fn(model=model, **options)
    return True
