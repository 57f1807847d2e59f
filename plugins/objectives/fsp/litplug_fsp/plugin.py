"""The ``fsp`` plugin: which hooks it uses, and for which objective.

- ``check_config`` checks the options against the run's sequence length, before anything is built.
- ``configure_model`` builds the auxiliary head(s), registered by the core as ``ctx.aux["fsp"]``
  (optimised and checkpointed, never exported), and for ``revlm`` loads the frozen teacher.
- ``extra_losses`` returns the weighted auxiliary term (``fsp_bce``, ``fsp_revlm`` or ``mtp``),
  computed from the hidden states of the step's single backbone pass, in training only.
- ``transform_batch`` reverses every sequence when training the teacher (``reverse_lm``).
- ``export_model`` marks an exported reverse LM as right-to-left.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from litplug.api import StepContext, hookimpl
from litplug_fsp.checks import check_run_config
from litplug_fsp.config import FSPConfig
from litplug_fsp.heads import head_for
from litplug_fsp.idf import idf_weights
from litplug_fsp.objectives import PositionFilter, fsp_bce_loss, fsp_revlm_loss, mtp_loss, sample_positions
from litplug_fsp.reverse import DIRECTION_KEY, load_teacher, reverse_batch

AUX_NAME = "fsp"
LOSS_NAMES = {"bce": "fsp_bce", "revlm": "fsp_revlm", "mtp": "mtp"}


class FSPPlugin:
    config_class = FSPConfig
    litplug_requires = ">=0.1,<0.2"
    # the settings the conformance harness trains it with (FSP-RevLM, which needs a trained teacher
    # first, has its own PluginConformance class in tests/test_plugin.py)
    conformance = ({"config": {"objective": "bce", "tau": 4, "positions_per_sequence": 3}, "overrides": ()},)

    def __init__(self, config: FSPConfig) -> None:
        self.config = config
        self.teacher: PreTrainedModel | None = None  # kept out of ctx.aux: frozen, not checkpointed

    @hookimpl
    def check_config(self, config: DictConfig) -> None:
        check_run_config(self.config, config)

    @hookimpl
    def configure_model(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                        config: DictConfig) -> dict[str, nn.Module] | None:
        c = self.config
        vocab_size = model.get_input_embeddings().num_embeddings
        if c.objective == "reverse_lm":
            return None
        if c.objective == "mtp":
            return {AUX_NAME: nn.ModuleList(head_for(model, c.head) for _ in range(c.n_heads))}
        if c.objective == "revlm":
            self.teacher = load_teacher(str(c.revlm_path), tokenizer, vocab_size)
            return {AUX_NAME: head_for(model, c.head, out_size=self.teacher.config.hidden_size)}
        weights = idf_weights(config, tokenizer, vocab_size) if c.token_weights == "idf" else None
        return {AUX_NAME: head_for(model, c.head, token_weights=weights)}

    @hookimpl
    def transform_batch(self, batch: dict[str, torch.Tensor]) -> None:
        if self.config.objective == "reverse_lm":
            batch.update(reverse_batch(batch))

    @hookimpl
    def extra_losses(self, ctx: StepContext, batch: dict[str, torch.Tensor],
                     hidden: torch.Tensor) -> dict[str, torch.Tensor] | None:
        c = self.config
        if c.objective == "reverse_lm" or not ctx.training:
            return None  # the aux loss only shapes gradients: validation skips it
        head = ctx.aux[AUX_NAME]
        out = ctx.head
        keep = self._position_filter(ctx)
        labels = batch["labels"]
        if c.objective == "bce":
            eos_id = None if c.document_boundary == "cross" else ctx.tokenizer.eos_token_id
            boundary = "truncate" if c.document_boundary == "cross" else c.document_boundary
            loss = fsp_bce_loss(head, out, hidden, labels, tau=c.tau, edge=c.edge, eos_id=eos_id, boundary=boundary,
                                token_weights=head.token_weights, normalize=c.normalize,
                                chunk_elements=c.chunk_elements, keep=keep)
        elif c.objective == "mtp":
            loss = mtp_loss(head, out, hidden, labels, chunk_elements=c.chunk_elements, keep=keep)
        else:
            teacher = self._teacher_on(hidden.device)
            loss = fsp_revlm_loss(head, teacher, batch, hidden, layer=c.revlm_layer, normalize=c.normalize,
                                  normalize_target=c.revlm_normalize_target, keep=keep)
        # weight 0: no graph at all, so the aux head's grads stay None and gradient clipping sees
        # exactly the parameters it sees without the plugin (bit-identical training)
        return {LOSS_NAMES[c.objective]: loss * c.weight if c.weight else loss.detach() * 0.0}

    @hookimpl
    def export_model(self, model: PreTrainedModel) -> None:
        if self.config.objective == "reverse_lm":
            setattr(model.config, DIRECTION_KEY, "right_to_left")

    def _position_filter(self, ctx: StepContext) -> PositionFilter | None:
        """Sampled positions depend only on (run seed, step), so a resumed run samples the same ones."""
        count = self.config.positions_per_sequence
        if count == 0:
            return None
        generator = torch.Generator().manual_seed(ctx.config.run.seed * 1_000_003 + ctx.global_step)
        return sample_positions(count, generator)

    def _teacher_on(self, device: torch.device) -> PreTrainedModel:
        assert self.teacher is not None, "configure_model loads the teacher before any loss is computed"
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        return self.teacher
