"""The model's own output head: what its forward does between the final hidden state and the logits.

Hugging Face causal LMs do more than ``lm_head(hidden)``: Granite divides the logits by
``logits_scaling``, Cohere multiplies them by ``logit_scale``, Gemma-2/3 soft-cap them with
``final_logit_softcapping``, and so on. Every loss litplug computes from hidden states (the core's
cross-entropy, a fused kernel, an FSP or MTP head) goes through :class:`OutputHead`, so it sees the
logits the model itself would produce. :func:`output_head` reads the transform from the model's
config and then *checks* it against the model's own forward on a probe batch, so an architecture
whose forward does something litplug does not know is refused at start-up instead of trained on a
silently different loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from litplug.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

# (config field, multiply?, model types where the field means the opposite or nothing).
# Each entry is confirmed against HF's own forward by tests/test_architectures.py.
_SCALE_FIELDS: tuple[tuple[str, bool, dict[str, bool | None]], ...] = (
    ("logits_scaling", False, {"hyperclovax": True}),  # Granite, MiniCPM3 divide; HyperCLOVA X multiplies
    ("logit_scale", True, {"mpt": None}),  # Cohere multiplies; MPT's forward ignores its logit_scale
    ("output_multiplier", True, {}),
    ("lm_head_multiplier", True, {}),  # Falcon-H1
)
_SOFTCAP_FIELDS = ("final_logit_softcapping", "logits_soft_cap")  # Gemma-2/3/4, nanochat, ...; RecurrentGemma

PROBE_TOKENS = 8  # the start-up check runs the model once on 2 x PROBE_TOKENS tokens


@dataclass(frozen=True)
class OutputHead:
    """``logits = softcap(scale * (hidden @ weight.T + bias))`` with ``softcap(z) = c * tanh(z / c)``.

    ``projection`` is ``model.get_output_embeddings()`` (tied or not); calling it, rather than
    reading its weight, keeps wrappers such as FSDP or LoRA in the path. A fused kernel reads
    ``weight``, ``bias``, ``scale`` and ``softcap`` and applies what it supports.
    """

    projection: torch.nn.Module
    scale: float = 1.0
    softcap: float | None = None

    @property
    def weight(self) -> torch.Tensor:
        return self.projection.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return getattr(self.projection, "bias", None)

    @property
    def is_plain(self) -> bool:
        """True when the logits are the projection alone (no scaling, no soft-capping)."""
        return self.scale == 1.0 and self.softcap is None

    def transform(self, raw: torch.Tensor) -> torch.Tensor:
        """The model's logits from the projection's output ``raw``."""
        import torch

        z = raw if self.scale == 1.0 else raw * self.scale
        if self.softcap is not None:
            z = torch.tanh(z / self.softcap) * self.softcap
        return z

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Exactly ``model(input_ids).logits`` from the backbone's final hidden states."""
        return self.transform(self.projection(hidden))

    def describe(self) -> str:
        parts = [f"scale={self.scale:g}"] if self.scale != 1.0 else []
        if self.softcap is not None:
            parts.append(f"softcap={self.softcap:g}")
        return ", ".join(parts) or "plain projection"


def head_transform(config: object) -> tuple[float, float | None]:
    """``(scale, softcap)`` from a transformers config (its text config for multimodal ones)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    model_type = getattr(text, "model_type", "") or getattr(config, "model_type", "")
    scale = 1.0
    for name, multiply, exceptions in _SCALE_FIELDS:
        value = getattr(text, name, None)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        mode = exceptions.get(model_type, multiply)
        if mode is None:
            continue
        scale = scale * value if mode else scale / value
    softcap = None
    for name in _SOFTCAP_FIELDS:
        cap = getattr(text, name, None)
        if isinstance(cap, (int, float)) and not isinstance(cap, bool) and cap > 0:
            softcap = float(cap)
    return float(scale), softcap


def backbone_hidden(model: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Final hidden states [B, T, H] of the model's backbone (after its final norm). No KV cache:
    training never decodes, and a cache would only cost memory."""
    return model.base_model(input_ids=input_ids, use_cache=False).last_hidden_state


def output_head(model: PreTrainedModel, check: bool = True) -> OutputHead:
    """The model's :class:`OutputHead`; with ``check``, proven equal to its own forward or refused."""
    projection = model.get_output_embeddings()
    model_type = getattr(model.config, "model_type", type(model).__name__)
    if projection is None or not hasattr(projection, "weight"):
        raise ConfigError(f"model: the {model_type} model has no output embedding layer "
                          "(get_output_embeddings() is None); litplug trains causal LMs with an LM head.")
    if model.base_model is model:
        raise ConfigError(f"model: the {model_type} model ({type(model).__name__}) has no separate backbone "
                          "(model.base_model is the model itself), so litplug cannot take the final hidden "
                          "states from it. Use an architecture whose causal LM wraps a base model.")
    head = OutputHead(projection, *head_transform(model.config))
    if check:
        check_output_head(model, head)
    return head


def check_output_head(model: PreTrainedModel, head: OutputHead) -> None:
    """Run the model once on a probe batch and refuse it when ``head.logits(hidden)`` is not its
    ``model(input_ids).logits``: the forward then does something to the logits litplug would skip."""
    import torch

    vocab = head.weight.shape[0]
    ids = (torch.arange(2 * PROBE_TOKENS).reshape(2, PROBE_TOKENS) * 7919 + 3) % vocab
    ids = ids.to(head.weight.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model(input_ids=ids, use_cache=False).logits.float()
            ours = head.logits(backbone_hidden(model, ids)).float()
    except Exception as exc:  # the architecture cannot run a plain causal forward
        model.train(was_training)
        raise ConfigError(f"model: the {model.config.model_type} model cannot run a plain causal forward on "
                          f"input_ids alone ({type(exc).__name__}: {str(exc).strip()[:200]}).") from None
    model.train(was_training)
    tolerance = 1e-4 * (1.0 + float(reference.abs().max()))
    diff = float((reference - ours).abs().max()) if reference.shape == ours.shape else float("inf")
    if not diff <= tolerance:
        raise ConfigError(
            f"model: litplug cannot reproduce the logits of this {model.config.model_type} model "
            f"({type(model).__name__}) from its final hidden states: its forward transforms them in a way "
            f"litplug does not know (max |difference| {diff:.3g} with head {head.describe()}). Training would "
            "use a different loss than the model's own, so the run is refused. Please report the architecture."
        )
