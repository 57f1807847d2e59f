"""Generation through the core's generate(): M_inf pauses appended, decoding from the last pause,
the pause never emitted."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from litplug_pause import PauseConfig

from litplug.api import encode_prompts, generate, plugin_manager
from litplug.testing import tiny_config

PROMPTS = ["1 2 + 3 4 =", "5 + 7 =", "9 9 + 1 0 =", "3 + 4 4 ="]  # different lengths: left padding


def manager(**options: Any) -> Any:
    """The hooks of a run with ``plugins.pause`` set to ``options``."""
    PauseConfig(**options)  # the options are real ones
    return plugin_manager(tiny_config(plugins={"pause": options}))


def no_plugins() -> Any:
    return plugin_manager(tiny_config())


def recorded_generate(model: Any, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record the token ids model.generate returns (the text output hides special tokens)."""
    outputs: list[torch.Tensor] = []
    original = model.generate

    def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(*args, **kwargs)
        outputs.append(out[:, kwargs["input_ids"].shape[1]:])
        return out

    monkeypatch.setattr(model, "generate", wrapper)
    return outputs


def test_prompts_get_m_pauses_and_m0_is_the_standard_prompt(pause_tokenizer: Any) -> None:
    pause_id = pause_tokenizer.convert_tokens_to_ids("<pause>")
    standard = encode_prompts(pause_tokenizer, PROMPTS, no_plugins())
    with_pauses = encode_prompts(pause_tokenizer, PROMPTS, manager(num_pauses=3))
    assert with_pauses == [ids + [pause_id] * 3 for ids in standard]
    assert encode_prompts(pause_tokenizer, PROMPTS, manager(num_pauses=3, inference_pauses=1)) == [
        ids + [pause_id] for ids in standard]
    assert encode_prompts(pause_tokenizer, PROMPTS, manager(num_pauses=0)) == standard


def test_generated_ids_never_contain_the_pause(pause_tokenizer: Any, pause_model: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pause_id = pause_tokenizer.convert_tokens_to_ids("<pause>")
    bump = torch.zeros(len(pause_tokenizer))
    bump[pause_id] = 100.0  # make the pause the model's favourite token everywhere
    pause_model.get_output_embeddings().register_forward_hook(lambda module, args, out: out + bump)
    outputs = recorded_generate(pause_model, monkeypatch)
    generate(pause_model, pause_tokenizer, PROMPTS, no_plugins(), max_new_tokens=6)
    assert (outputs[0] == pause_id).float().mean() > 0.5  # without the plugin the pause is emitted
    texts = generate(pause_model, pause_tokenizer, PROMPTS, manager(num_pauses=2), max_new_tokens=6)
    assert not (outputs[1] == pause_id).any()
    assert all("<pause>" not in t[0] for t in texts)


def test_first_token_is_the_argmax_at_the_last_pause(pause_tokenizer: Any, pause_model: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    m = 4
    pause_id = pause_tokenizer.convert_tokens_to_ids("<pause>")
    pm = manager(num_pauses=m)
    outputs = recorded_generate(pause_model, monkeypatch)
    generate(pause_model, pause_tokenizer, PROMPTS, pm, max_new_tokens=2)
    at_last_pause, at_prompt_end = [], []
    with torch.no_grad():
        for ids in encode_prompts(pause_tokenizer, PROMPTS, pm):
            logits = pause_model(torch.tensor([ids])).logits[0]
            logits[:, pause_id] = -float("inf")
            at_last_pause.append(int(logits[-1].argmax()))
            at_prompt_end.append(int(logits[-1 - m].argmax()))
    assert outputs[0][:, 0].tolist() == at_last_pause
    assert at_last_pause != at_prompt_end  # the check can tell the last pause from the prompt's end
