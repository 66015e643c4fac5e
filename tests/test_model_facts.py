"""Model facts: config arithmetic against published parameter counts, and Hub reads through the stand-in."""

from __future__ import annotations

import json

import pytest

from trainer_space.errors import GatedRepo, InvalidInput, RepoNotFound
from trainer_space.estimate.model_facts import (
    architecture_from_config,
    clear_cache,
    facts_from_config,
    get_model_facts,
    param_breakdown,
    params_from_config,
)
from trainer_space.hub.session import HubSession

# Real config.json values (only the keys that matter), each from the named Hub repo. The expected totals are the
# "safetensors total" the Hub shows on each model page (GET /api/models/{id} -> safetensors.total).
QWEN25_05B = {  # Qwen/Qwen2.5-0.5B
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 32768, "torch_dtype": "bfloat16",
}  # fmt: skip
QWEN25_15B = {  # Qwen/Qwen2.5-1.5B
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 1536, "intermediate_size": 8960,
    "num_hidden_layers": 28, "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936,
    "tie_word_embeddings": True, "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
}  # fmt: skip
QWEN25_7B = {  # Qwen/Qwen2.5-7B
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944,
    "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
    "tie_word_embeddings": False, "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
}  # fmt: skip
LLAMA31_8B = {  # meta-llama/Llama-3.1-8B
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
    "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16",
}  # fmt: skip
LLAMA2_7B = {  # meta-llama/Llama-2-7b-hf
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
    "tie_word_embeddings": False, "torch_dtype": "float16",
}  # fmt: skip
MISTRAL_7B = {  # mistralai/Mistral-7B-v0.1
    "architectures": ["MistralForCausalLM"], "model_type": "mistral", "hidden_size": 4096, "intermediate_size": 14336,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
GEMMA2_2B = {  # google/gemma-2-2b
    "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216,
    "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
    "vocab_size": 256000, "attention_bias": False, "torch_dtype": "float32",
}  # fmt: skip
PHI3_MINI = {  # microsoft/Phi-3-mini-4k-instruct
    "architectures": ["Phi3ForCausalLM"], "model_type": "phi3", "hidden_size": 3072, "intermediate_size": 8192,
    "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32064,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
SMOLLM2_135M = {  # HuggingFaceTB/SmolLM2-135M
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
    "tie_word_embeddings": True, "torch_dtype": "bfloat16",
}  # fmt: skip
MIXTRAL_8X7B = {  # mistralai/Mixtral-8x7B-v0.1
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 4096,
    "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
    "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
}  # fmt: skip
GPT2 = {  # openai-community/gpt2
    "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12,
    "n_positions": 1024, "n_ctx": 1024, "vocab_size": 50257, "n_inner": None,
}  # fmt: skip

PUBLISHED = [
    ("Qwen/Qwen2.5-0.5B", QWEN25_05B, 494_032_768),
    ("Qwen/Qwen2.5-1.5B", QWEN25_15B, 1_543_714_304),
    ("Qwen/Qwen2.5-7B", QWEN25_7B, 7_615_616_512),
    ("meta-llama/Llama-3.1-8B", LLAMA31_8B, 8_030_261_248),
    ("meta-llama/Llama-2-7b-hf", LLAMA2_7B, 6_738_415_616),
    ("mistralai/Mistral-7B-v0.1", MISTRAL_7B, 7_241_732_096),
    ("google/gemma-2-2b", GEMMA2_2B, 2_614_341_888),
    ("microsoft/Phi-3-mini-4k-instruct", PHI3_MINI, 3_821_079_552),
    ("HuggingFaceTB/SmolLM2-135M", SMOLLM2_135M, 134_515_008),
    ("mistralai/Mixtral-8x7B-v0.1", MIXTRAL_8X7B, 46_702_792_704),
    ("openai-community/gpt2", GPT2, 124_439_808),
]


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.mark.parametrize(("repo", "config", "published"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_config_arithmetic_matches_the_hubs_safetensors_total_within_1_percent(repo, config, published):
    assert params_from_config(config) == pytest.approx(published, rel=0.01), repo


def test_mixtral_active_parameters_are_two_of_eight_experts():
    # Mistral AI's announcement of Mixtral 8x7B: "46.7B total parameters but only uses 12.9B parameters per token"
    b = param_breakdown(MIXTRAL_8X7B)
    assert b.active == pytest.approx(12.9e9, rel=0.01)
    facts = facts_from_config("mistralai/Mixtral-8x7B-v0.1", MIXTRAL_8X7B, safetensors_total=46_702_792_704)
    assert facts.arch.is_moe and facts.active_params == pytest.approx(12.9e9, rel=0.01)


def test_lora_all_linear_rank_16_on_qwen05b_matches_peft():
    # PEFT's print_trainable_parameters for Qwen2.5-0.5B, r=16, target_modules="all-linear": 8,798,208
    assert 16 * param_breakdown(QWEN25_05B).lora_targets == 8_798_208


def test_tied_embeddings_count_once_and_untied_twice():
    tied, untied = param_breakdown(QWEN25_05B), param_breakdown({**QWEN25_05B, "tie_word_embeddings": False})
    assert tied.lm_head == 0 and untied.lm_head == 151936 * 896
    assert untied.total - tied.total == 151936 * 896


def test_multimodal_configs_use_their_text_config():
    nested = {"architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "llava",
              "text_config": QWEN25_05B, "vision_config": {"hidden_size": 1280, "depth": 32}}  # fmt: skip
    assert params_from_config(nested) == 494_032_768
    assert architecture_from_config(nested).hidden_size == 896


def test_a_config_without_transformer_numbers_is_refused_clearly():
    with pytest.raises(InvalidInput, match="hidden_size"):
        params_from_config({"model_type": "resnet", "num_channels": 3})


def test_safetensors_total_wins_and_a_big_gap_is_explained():
    facts = facts_from_config("x/vlm", QWEN25_05B, safetensors_total=900_000_000, safetensors_params={"BF16": 9e8})
    assert facts.params == 900_000_000 and facts.params_source == "safetensors"
    assert facts.checkpoint_bytes == 1_800_000_000
    assert any("vision" in n for n in facts.notes)


# ----------------------------------------------------------------------------- through the Hub stand-in
def _add(hub, repo_id, config, *, safetensors=True, **kwargs):
    st = {"parameters": {"BF16": 494_032_768}, "total": 494_032_768} if safetensors else None
    return hub.add_model(repo_id, files={"config.json": json.dumps(config)}, safetensors=st, **kwargs)


def test_facts_come_from_the_safetensors_metadata_and_config_json(hub):
    _add(hub, "Qwen/Qwen2.5-0.5B", QWEN25_05B)
    facts = get_model_facts(HubSession(None), "Qwen/Qwen2.5-0.5B")
    assert facts.params == 494_032_768 and facts.params_source == "safetensors"
    assert (facts.arch.hidden_size, facts.arch.num_layers, facts.arch.num_kv_heads) == (896, 24, 2)
    assert facts.arch.tied_embeddings and facts.arch.vocab_size == 151936
    assert facts.checkpoint_bytes == 2 * 494_032_768
    assert facts.sha
    # no weight file was asked for: only the model info and config.json
    paths = [r.path for r in hub.requests]
    assert not any(p.endswith((".safetensors", ".bin")) for p in paths)


def test_a_pasted_url_works_and_facts_are_cached(hub):
    _add(hub, "Qwen/Qwen2.5-0.5B", QWEN25_05B)
    get_model_facts(HubSession(None), "https://huggingface.co/Qwen/Qwen2.5-0.5B")
    n = len(hub.requests)
    assert get_model_facts(HubSession(None), "Qwen/Qwen2.5-0.5B").params == 494_032_768
    assert len(hub.requests) == n  # answered from the cache


def test_without_safetensors_metadata_the_config_arithmetic_is_used_and_said(hub):
    _add(hub, "old/bin-model", QWEN25_05B, safetensors=False)
    facts = get_model_facts(HubSession(None), "old/bin-model")
    assert facts.params_source == "config" and facts.params == 494_032_768
    assert any("no safetensors metadata" in n for n in facts.notes)


def test_a_gated_model_without_access_says_how_to_get_it(hub):
    _add(hub, "alice/gated-llm", QWEN25_05B, gated=True)
    with pytest.raises(GatedRepo, match="request access"):
        get_model_facts(HubSession(None), "alice/gated-llm")
    with pytest.raises(GatedRepo):
        get_model_facts(HubSession(hub.bob), "alice/gated-llm")


def test_gated_facts_are_never_shared_with_another_token(hub):
    _add(hub, "alice/gated-llm", QWEN25_05B, gated=True)
    assert get_model_facts(HubSession(hub.alice), "alice/gated-llm").gated  # alice owns it
    with pytest.raises(GatedRepo):
        get_model_facts(HubSession(hub.bob), "alice/gated-llm")  # the cache does not hand alice's answer to bob
    with pytest.raises(GatedRepo):
        get_model_facts(HubSession(None), "alice/gated-llm")


def test_a_missing_model_is_reported_by_name(hub):
    with pytest.raises(RepoNotFound, match="nobody/nothing"):
        get_model_facts(HubSession(None), "nobody/nothing")


def test_a_repo_without_config_json_is_not_a_transformers_model(hub):
    hub.add_model("someone/gguf-only", files={"model.gguf": b"GGUF"})
    with pytest.raises(InvalidInput, match=r"no config\.json"):
        get_model_facts(HubSession(None), "someone/gguf-only")


def test_a_bad_id_is_refused_before_any_request(hub):
    n = len(hub.requests)
    with pytest.raises(InvalidInput):
        get_model_facts(HubSession(None), "not a/valid//id")
    assert len(hub.requests) == n
