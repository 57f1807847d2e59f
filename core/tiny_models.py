"""Tiny configs for every architecture in transformers' causal-LM auto mapping, for conformance tests.

A plugin that works on hidden states or the output head should work on every model a user may bring;
``tests/test_architectures.py`` checks the core against Hugging Face's own loss over this set, and a
plugin's tests can do the same with :func:`tiny_model_config`. Nothing here downloads anything.

Each architecture is in exactly one of three states:

- *checked*: builds from :func:`tiny_model_config` and litplug's loss must equal HF's;
- :data:`REFUSED`: litplug must refuse it at start-up with a ConfigError (exit 2), never train on a
  loss that differs from the model's own; the value says why;
- :data:`NOT_BUILT`: not built at all in tests (the value says why, e.g. a vision tower of hundreds of
  millions of parameters at any text size).
"""

from __future__ import annotations

from typing import Any

# The sizes every tiny model starts from (litplug's model.* keys).
TINY_SIZES: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 64,
}

_MLA = {"qk_rope_head_dim": 4, "qk_nope_head_dim": 4, "v_head_dim": 8, "kv_lora_rank": 16, "q_lora_rank": 16}
_SMALL_MOE = {"n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16,
              "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1}

# model.extra per architecture: what its config needs beyond TINY_SIZES to be tiny and consistent, and
# non-default output transforms so that the scale / soft-cap paths are exercised with real values.
EXTRA: dict[str, dict[str, Any]] = {
    "gptj": {"rotary_dim": 4},
    "codegen": {"rotary_dim": 4},
    "deepseek_v2": {**_MLA, **_SMALL_MOE},
    "deepseek_v3": {**_MLA, **_SMALL_MOE},
    "minicpm3": {**_MLA, "dim_model_base": 16},  # logits_scaling = hidden_size / dim_model_base = 2
    "gpt_neo": {"attention_types": [[["global", "local"], 1]], "window_size": 8},
    "mamba2": {"num_heads": 4, "head_dim": 16, "n_groups": 1, "expand": 2},
    "helium": {"head_dim": 8},
    "hunyuan_v1_dense": {"head_dim": 8},
    "ministral": {"head_dim": 8},
    "granite": {"logits_scaling": 4.0},
    "granitemoe": {"logits_scaling": 4.0},
    "cohere": {"logit_scale": 0.25},
    "gemma2": {"final_logit_softcapping": 2.0},
    "gemma3_text": {"final_logit_softcapping": 2.0},
    "falcon_h1": {"lm_head_multiplier": 0.5},
    "hyperclovax": {"logits_scaling": 0.5},
    "recurrent_gemma": {"block_types": ["recurrent", "attention"], "logits_soft_cap": 3.0},
    # encoder-decoder families: num_hidden_layers maps to the encoder; the causal LM is the decoder
    **{name: {"decoder_layers": 2, "encoder_layers": 2} for name in (
        "bart", "bigbird_pegasus", "blenderbot", "blenderbot-small", "marian", "mbart", "mvp", "pegasus")},
    # hybrids: at least one full-attention layer (a cache of linear-attention layers only breaks HF's generate)
    **{name: {"layer_types": ["linear_attention", "full_attention"]} for name in (
        "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text")},
    "jamba": {"attn_layer_period": 2, "attn_layer_offset": 1, "expert_layer_period": 2, "expert_layer_offset": 1},
}

_HEAD_TRANSFORM = ("an encoder-style LM head: a dense layer, activation and norm between the backbone and the "
                   "projection, which litplug's output head does not model")
_TINY_UNKNOWN = "no tiny config worked out yet; litplug refuses it at start-up rather than crash"

REFUSED: dict[str, str] = {
    **{name: _HEAD_TRANSFORM for name in (
        "bert", "big_bird", "camembert", "data2vec-text", "ernie", "megatron-bert", "modernbert-decoder",
        "roberta", "roberta-prelayernorm", "roc_bert", "roformer", "xlm-roberta", "xlm-roberta-xl",
        "inkling_text", "xlstm")},
    "llama4_text": "Llama4ForCausalLM has no separate backbone (base_model is the model itself)",
    **{name: _TINY_UNKNOWN for name in (
        "axk1", "axk2", "bamba", "cohere_compass_text", "dbrx", "deepseek_v32", "dots1", "dots3_note",
        "dots3_note_text", "electra", "gemma3n_text", "gemma4_assistant", "glm_moe_dsa", "granitemoehybrid",
        "hunyuan_v1_moe", "inkling2_loop_text", "inkling2_text", "lfm2_moe", "longcat_flash",
        "plbart", "prophetnet", "qwen4_exp", "reformer", "rembert", "sarvam_mla", "whisper",
        "xlnet", "xmod", "youtu", "zamba", "zamba2", "musicgen", "musicgen_melody")},
}

_MULTIMODAL = "multimodal: the tiny text sizes still build a full-size vision or audio tower (minutes on CPU)"
NOT_BUILT: dict[str, str] = {
    **{name: _MULTIMODAL for name in (
        "blt", "emu3", "gemma3", "gemma3n", "gemma4", "gemma4_unified", "gemma4_unified_assistant", "got_ocr2",
        "llama4", "mllama", "moss_transcribe_diarize", "phi4_multimodal", "qwen3_5", "qwen3_5_moe")},
    "fuyu": "multimodal: its config has no top-level vocab_size, so a text-only run cannot be sized",
    "git": "image captioning: HF's own loss needs pixel_values, so there is no text-only reference loss",
}

# Checked for the loss, but not trained end to end: HF's own cached generation (the end-of-run evaluation)
# fails at every tiny config tried, a transformers limitation rather than litplug's.
NOT_TRAINED: dict[str, str] = {
    "kimi_linear": "HF generate with a cache fails at tiny sizes (tensor size mismatch in its linear attention)",
    "qwen4_exp_text": "HF generate with a cache fails at tiny sizes (its cache holds only linear-attention layers)",
    "bailing_hybrid": "HF generate with a cache fails at tiny sizes (tensor size mismatch in its linear attention)",
}

# Trained for a few steps inside `make test`; every checked architecture trains under `make test-slow`.
REPRESENTATIVE: tuple[str, ...] = (
    "llama", "gpt2", "qwen2", "mistral", "gemma", "gemma2", "granite", "gpt_neox", "phi", "olmo", "cohere",
    "mamba", "bloom", "opt", "starcoder2", "mixtral", "deepseek_v3", "recurrent_gemma", "rwkv", "gpt_neo",
)


def causal_lm_architectures() -> list[str]:
    """Every ``model_type`` in the installed transformers' causal-LM auto mapping."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def checked_architectures() -> list[str]:
    return [a for a in causal_lm_architectures() if a not in REFUSED and a not in NOT_BUILT]


def tiny_model_config(architecture: str) -> Any:
    """litplug's ``model`` section (a DictConfig) for a tiny model of ``architecture``."""
    from omegaconf import OmegaConf

    from litplug.config import ModelConfig

    return OmegaConf.structured(ModelConfig(architecture=architecture, **TINY_SIZES,
                                            extra=dict(EXTRA.get(architecture, {}))))


def tiny_model_overrides(architecture: str) -> list[str]:
    """The same model as ``key=value`` overrides for a run."""
    import json

    sizes = [f"model.{key}={value}" for key, value in TINY_SIZES.items()]
    return [f"model.architecture={architecture}", *sizes, f"model.extra={json.dumps(EXTRA.get(architecture, {}))}"]
