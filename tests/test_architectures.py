"""Every causal-LM architecture transformers can build tiny: litplug's loss is HF's own, or refused.

For each architecture in the installed transformers' causal-LM auto mapping (litplug.tiny_models), a
model built through litplug's own path (``model.architecture=...``) gives a training loss equal to
``model(input_ids, labels=...).loss`` to 1e-5 in fp32, through the core and through the liger
plugin's fallback kernel; architectures litplug cannot reproduce are refused with a ConfigError.
The terminal summary prints ``N architectures checked, M skipped`` (tests/conftest.py).
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from litplug.config import load_config
from litplug.data.batch import to_model_batch
from litplug.data.prepare import build_rows
from litplug.data.tasks import get_task
from litplug.errors import ConfigError
from litplug.head import output_head
from litplug.model import build_model, word_tokenizer
from litplug.module import LitplugModule
from litplug.plugins import load_plugins
from litplug.tiny_models import NOT_BUILT, REFUSED, causal_lm_architectures, tiny_model_config

TOKENIZER = word_tokenizer(get_task("arithmetic", {"digits": 2}).vocab())
CFG = load_config(None, ["tracking.enabled=false"])
PM = load_plugins(CFG)[0]


def _batch() -> dict[str, torch.Tensor]:
    examples = get_task("arithmetic", {"digits": 2}).examples("train", 6, 0)
    rows = torch.from_numpy(build_rows(TOKENIZER, examples, 16, "arithmetic"))
    batch = to_model_batch({"tokens": rows[:, :-2], "n_prompt": rows[:, -2], "length": rows[:, -1]})
    batch["labels"][:, -1] = -100  # HF's own loss has no target for the last input position
    return batch


def hf_labels(labels: torch.Tensor) -> torch.Tensor:
    """Our shifted labels as HF's unshifted ``labels=`` argument (HF shifts them itself)."""
    return torch.cat([labels.new_full((labels.shape[0], 1), -100), labels[:, :-1]], dim=1)


def hf_loss(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """HF's own ``model(input_ids, labels=...).loss``. Most causal LMs shift ``labels`` themselves
    (``self.loss_function`` = ForCausalLMLoss); a few older ones (BART-style decoders, XGLM, ...) take
    them pre-shifted and call CrossEntropyLoss directly. Each is given labels in its own convention."""
    shifts = "loss_function" in inspect.getsource(type(model).forward)
    labels = hf_labels(batch["labels"]) if shifts else batch["labels"]
    return model(input_ids=batch["input_ids"], labels=labels, use_cache=False).loss.float()


def _build(architecture: str) -> Any:
    torch.manual_seed(0)
    return build_model(tiny_model_config(architecture), TOKENIZER)


@pytest.mark.parametrize("architecture", causal_lm_architectures())
def test_own_loss(architecture: str) -> None:
    if architecture in NOT_BUILT:
        pytest.skip(NOT_BUILT[architecture])
    if architecture in REFUSED:
        with pytest.raises(ConfigError, match=r"model"):
            output_head(_build(architecture))
        pytest.skip(f"refused at start-up: {REFUSED[architecture]}")
    model = _build(architecture)
    output_head(model)  # the start-up check passes
    model.eval()  # no dropout: the two forwards must see the same network
    batch = _batch()
    module = LitplugModule(CFG, model, TOKENIZER, PM)
    with torch.no_grad():
        ours = module.compute_losses(dict(batch), "train")["lm"]
        theirs = hf_loss(model, batch)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    liger = pytest.importorskip("litplug_liger.plugin")
    from litplug_liger.config import LigerConfig

    fused = liger.LigerPlugin(LigerConfig(chunk_rows=5))
    with torch.no_grad():
        kernel = fused.lm_loss(hidden=module.hidden_states(batch["input_ids"]), head=module.output_head,
                               labels=batch["labels"])
    torch.testing.assert_close(kernel, theirs, rtol=1e-5, atol=1e-5)


def test_the_check_refuses_a_forward_that_changes_the_logits_unknown_to_litplug() -> None:
    """A Granite whose config hides its logits_scaling (as a new architecture would) is refused."""
    model = _build("granite")
    model.config.logits_scaling = 4.0  # the forward divides by it ...
    from litplug.head import OutputHead, check_output_head

    output_head(model)  # ... and litplug knows the field: accepted
    with pytest.raises(ConfigError, match="cannot reproduce the logits of this granite model"):
        check_output_head(model, OutputHead(model.get_output_embeddings()))  # a head that ignores it


def test_gemma2_and_granite_losses_are_the_models_own_not_the_bare_projection() -> None:
    """The regression of issue 14: the bare ``lm_head(hidden)`` loss differs from HF's on both."""
    batch = _batch()
    for architecture, field, value in (("granite", "logits_scaling", 4.0), ("gemma2", "final_logit_softcapping", 0.1)):
        model = _build(architecture).eval()
        setattr(model.config, field, value)  # strong enough to matter at initialisation
        module = LitplugModule(CFG, model, TOKENIZER, PM)
        with torch.no_grad():
            hidden = module.hidden_states(batch["input_ids"])
            bare = torch.nn.functional.cross_entropy(model.get_output_embeddings()(hidden).flatten(0, 1),
                                                     batch["labels"].flatten())
            ours = module.compute_losses(dict(batch), "train")["lm"]
            theirs = hf_loss(model, batch)
        assert abs(float(bare) - float(theirs)) > 1e-3, architecture  # the old loss was really wrong here
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
