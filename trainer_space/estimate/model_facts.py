"""What a model is, read from the Hub without downloading a single weight.

Two sources, both tiny:

* `GET /api/models/{id}` (`HfApi.model_info`): the safetensors header totals (`safetensors.total`, and the
  count per dtype), written by the Hub from the checkpoint's headers. This is the parameter count we trust.
* `config.json` (`hf_hub_download`, a few kB): the architecture numbers (hidden size, layers, heads, KV heads,
  intermediate size, vocabulary, tied embeddings, experts) that the memory and time models need.

When a repo has no safetensors metadata (old `.bin` checkpoints), the parameter count comes from the config
arithmetic in `param_breakdown` instead, and a note says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import GatedRepo, InvalidInput, InvalidToken, MissingPermission, RepoNotFound
from ..hub.cache import TTLCache
from ..hub.session import HubSession
from ..validation import looks_like_path, validate_local_path, validate_repo_id
from .speed_rules import model_hazards

# bytes per parameter of the dtypes the Hub reports in `safetensors.parameters`
DTYPE_BYTES: dict[str, float] = {
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
    "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "I8": 1, "U8": 1, "BOOL": 1, "F4": 0.5, "F6_E2M3": 0.75,
}  # fmt: skip
CONFIG_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

# MLP with a gate (SwiGLU / GeGLU: gate, up, down) for these families; GPT-2-style two-matrix MLP otherwise
_NON_GATED = {"gpt2", "gpt_neox", "gptj", "phi", "falcon", "opt", "bloom", "starcoder2", "gpt_bigcode", "mpt"}
# q, k and v projections carry a bias in these families even though their configs have no `attention_bias` key
_QKV_BIAS = {"qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl"}
# tie_word_embeddings default of the transformers config class when config.json leaves it out
_UNTIED_BY_DEFAULT = {
    "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "olmo", "olmo2",
    "granite", "deepseek_v2", "deepseek_v3", "starcoder2", "gpt_neox", "falcon",
}  # fmt: skip


@dataclass(frozen=True)
class Architecture:
    """The text model's shape, as the memory and time models need it."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tied_embeddings: bool
    gated_mlp: bool = True
    num_experts: int = 0  # 0: dense
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    num_dense_layers: int = 0  # leading dense layers of a MoE model (DeepSeek's first_k_dense_replace)
    max_position_embeddings: int = 0
    architectures: tuple[str, ...] = ()

    @property
    def q_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def mlp_width_per_token(self) -> int:
        """Intermediate width one token goes through per layer (routed experts times k, plus shared ones)."""
        if not self.is_moe:
            return self.intermediate_size
        moe_layers = self.num_layers - self.num_dense_layers
        routed = self.experts_per_token * self.moe_intermediate_size + self.shared_expert_intermediate_size
        return round((moe_layers * routed + self.num_dense_layers * self.intermediate_size) / self.num_layers)


@dataclass(frozen=True)
class ParamBreakdown:
    """Parameter counts by role (all from config arithmetic)."""

    total: int
    active: int  # per token (MoE: k of E experts); == total for dense models
    embedding: int  # input embeddings (+ learned positions)
    lm_head: int  # 0 when tied to the embeddings
    norms: int
    linear: int  # everything else: the matrices LoRA adapts and QLoRA quantises (plus biases)
    lora_targets: int  # in+out features summed over the linear layers "all-linear" adapts (rank 1)


@dataclass(frozen=True)
class ModelFacts:
    """A model's size and shape, plus where each figure came from."""

    model_id: str
    sha: str | None
    arch: Architecture
    params: int  # what gets loaded: the safetensors total when the Hub has it, else config arithmetic
    params_source: str  # "safetensors" | "config"
    breakdown: ParamBreakdown  # from the config (scaled to `params` for embedding/linear shares where needed)
    checkpoint_bytes: int  # download size of the weights
    gated: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    # speed settings unsafe for this model, read from its config.json (`speed_rules.model_hazards`): setting -> why
    hazards: dict[str, str] = field(default_factory=dict)

    @property
    def active_params(self) -> int:
        """Parameters used per token (MoE: shared + k routed experts)."""
        return max(self.params - (self.breakdown.total - self.breakdown.active), self.breakdown.active // 2)

    @property
    def embedding_params(self) -> int:
        return self.breakdown.embedding

    @property
    def head_params(self) -> int:
        return self.breakdown.lm_head

    @property
    def linear_params(self) -> int:
        """Weights in linear layers (what QLoRA quantises): the loaded total minus embeddings, head, norms."""
        b = self.breakdown
        return max(self.params - b.embedding - b.lm_head - b.norms, 0)

    @property
    def params_config(self) -> int:
        return self.breakdown.total


# ----------------------------------------------------------------------------- config arithmetic (pure)
def text_config(config: dict[str, Any]) -> dict[str, Any]:
    """The language model's part of a config (multimodal configs nest it under `text_config` / `llm_config`)."""
    for key in ("text_config", "llm_config", "language_config"):
        sub = config.get(key)
        if isinstance(sub, dict) and (sub.get("hidden_size") or sub.get("n_embd") or sub.get("d_model")):
            merged = dict(sub)
            for inherit in ("tie_word_embeddings", "vocab_size"):
                if inherit not in merged and inherit in config:
                    merged[inherit] = config[inherit]
            merged.setdefault("architectures", config.get("architectures"))
            return merged
    return config


def _first(cfg: dict[str, Any], *keys: str, default: Any = None) -> Any:
    for key in keys:
        value = cfg.get(key)
        if value is not None:
            return value
    return default


def architecture_from_config(config: dict[str, Any]) -> Architecture:
    """Read the architecture numbers from a `config.json` dict; InvalidInput when they are missing."""
    cfg = text_config(config)
    model_type = str(cfg.get("model_type") or config.get("model_type") or "")
    hidden = _first(cfg, "hidden_size", "n_embd", "d_model")
    layers = _first(cfg, "num_hidden_layers", "n_layer", "num_layers")
    heads = _first(cfg, "num_attention_heads", "n_head", "num_heads")
    vocab = _first(cfg, "vocab_size", "padded_vocab_size")
    if not all(isinstance(v, int) and v > 0 for v in (hidden, layers, heads, vocab)):
        raise InvalidInput(
            "config.json lacks the numbers of a transformer language model (hidden_size, num_hidden_layers, "
            "num_attention_heads, vocab_size); this model cannot be estimated."
        )
    kv_heads = _first(cfg, "num_key_value_heads", "num_kv_heads", default=None)
    if kv_heads is None:
        kv_heads = 1 if cfg.get("multi_query") else heads
    head_dim = _first(cfg, "head_dim", default=None) or hidden // heads
    num_experts = int(_first(cfg, "num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts", default=0))
    gated = model_type not in _NON_GATED
    intermediate = _first(cfg, "intermediate_size", "n_inner", "ffn_hidden_size", default=None)
    if not intermediate:
        intermediate = 4 * hidden
    if num_experts:
        moe_inter = int(_first(cfg, "moe_intermediate_size", default=intermediate))
        shared = int(_first(cfg, "shared_expert_intermediate_size", default=0))
        if not shared and cfg.get("n_shared_experts"):
            shared = int(cfg["n_shared_experts"]) * moe_inter
        k = int(_first(cfg, "num_experts_per_tok", "moe_top_k", "top_k", default=2))
        dense_layers = int(_first(cfg, "first_k_dense_replace", default=0))
    else:
        moe_inter = shared = k = dense_layers = 0
    tied_default = model_type not in _UNTIED_BY_DEFAULT
    return Architecture(
        model_type=model_type,
        hidden_size=int(hidden),
        num_layers=int(layers),
        num_heads=int(heads),
        num_kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        intermediate_size=int(intermediate),
        vocab_size=int(vocab),
        tied_embeddings=bool(_first(cfg, "tie_word_embeddings", default=tied_default)),
        gated_mlp=gated,
        num_experts=num_experts,
        experts_per_token=k,
        moe_intermediate_size=moe_inter,
        shared_expert_intermediate_size=shared,
        num_dense_layers=dense_layers,
        max_position_embeddings=int(_first(cfg, "max_position_embeddings", "n_positions", "seq_length", default=0)),
        architectures=tuple(config.get("architectures") or cfg.get("architectures") or ()),
    )


def _mlp(hidden: int, inter: int, gated: bool, bias: bool) -> tuple[int, int]:
    """(params, lora in+out sum) of one MLP: gate/up/down (gated) or fc1/fc2."""
    if gated:
        return 3 * hidden * inter + (2 * inter + hidden if bias else 0), 3 * (hidden + inter)
    return 2 * hidden * inter + (inter + hidden if bias else 0), 2 * (hidden + inter)


def param_breakdown(config: dict[str, Any]) -> ParamBreakdown:
    """Parameter counts of a decoder-only transformer from its config alone.

    Counts, per layer: attention q/k/v/o (GQA-aware, fused or not: same count; MLA for DeepSeek), the MLP
    (gated or not; MoE: all experts + router + shared experts), norms (RMSNorm: weight; LayerNorm: weight and
    bias; Gemma 2/3: four per layer; Qwen3/OLMo2-style q/k norms); then embeddings, the LM head (unless tied)
    and the final norm. Checked against the Hub's safetensors totals in tests/test_model_facts.py.
    """
    cfg = text_config(config)
    a = architecture_from_config(config)
    h, L, V = a.hidden_size, a.num_layers, a.vocab_size
    mt = a.model_type
    attn_bias = bool(cfg.get("attention_bias") or cfg.get("bias") or mt in _QKV_BIAS or mt in {"gpt2", "phi"})
    mlp_bias = bool(cfg.get("mlp_bias") or cfg.get("bias") or mt in {"gpt2", "phi", "starcoder2", "gpt_neox"})
    layer_norm = mt in {"gpt2", "phi", "gpt_neox", "falcon", "starcoder2", "opt", "bloom", "gpt_bigcode"}
    norm_params = (2 if layer_norm else 1) * h

    # attention
    if cfg.get("kv_lora_rank"):  # DeepSeek multi-head latent attention
        qk_nope, qk_rope = int(cfg.get("qk_nope_head_dim", 128)), int(cfg.get("qk_rope_head_dim", 64))
        v_head, q_rank, kv_rank = int(cfg.get("v_head_dim", 128)), cfg.get("q_lora_rank"), int(cfg["kv_lora_rank"])
        qk_head = qk_nope + qk_rope
        if q_rank:
            q = h * q_rank + q_rank + q_rank * a.num_heads * qk_head
            q_lora = h + q_rank + q_rank + a.num_heads * qk_head
        else:
            q, q_lora = h * a.num_heads * qk_head, h + a.num_heads * qk_head
        kv = h * (kv_rank + qk_rope) + kv_rank + kv_rank * a.num_heads * (qk_nope + v_head)
        o = a.num_heads * v_head * h
        attn = q + kv + o
        attn_lora = (
            q_lora + (h + kv_rank + qk_rope) + (kv_rank + a.num_heads * (qk_nope + v_head)) + (a.num_heads * v_head + h)
        )
    else:
        attn = h * a.q_dim + 2 * h * a.kv_dim + a.q_dim * h
        if attn_bias:
            attn += a.q_dim + 2 * a.kv_dim + (h if mt in {"gpt2", "phi"} or cfg.get("attention_bias") else 0)
        attn_lora = (h + a.q_dim) + 2 * (h + a.kv_dim) + (a.q_dim + h)
    if cfg.get("qk_norm") or mt in {"qwen3", "qwen3_moe", "gemma3", "gemma3_text"}:
        attn += 2 * a.head_dim
    elif mt in {"olmo2"}:
        attn += a.q_dim + a.kv_dim

    # MLP (dense or MoE)
    dense_mlp, dense_lora = _mlp(h, a.intermediate_size, a.gated_mlp, mlp_bias)
    if a.is_moe:
        expert, _ = _mlp(h, a.moe_intermediate_size, True, False)
        router = h * a.num_experts + (a.num_experts if mt == "deepseek_v3" else 0)
        shared, shared_lora = (0, 0)
        if a.shared_expert_intermediate_size:
            shared, shared_lora = _mlp(h, a.shared_expert_intermediate_size, True, False)
            if mt == "qwen2_moe":
                shared += h  # shared_expert_gate: Linear(h, 1)
        moe_mlp = a.num_experts * expert + router + shared
        moe_active = a.experts_per_token * expert + router + shared
        moe_lora = shared_lora + (h + a.num_experts)  # experts are fused 3-D tensors in transformers 5: not Linear
    else:
        moe_mlp = moe_active = moe_lora = 0

    norms_per_layer = 4 if mt.startswith("gemma2") or mt.startswith("gemma3") else (1 if mt == "phi" else 2)
    layer_norms = norms_per_layer * norm_params
    moe_layers = (L - a.num_dense_layers) if a.is_moe else 0
    dense_layers = L - moe_layers
    layers_total = L * (attn + layer_norms) + dense_layers * dense_mlp + moe_layers * moe_mlp
    layers_active = L * (attn + layer_norms) + dense_layers * dense_mlp + moe_layers * moe_active
    lora_targets = L * attn_lora + dense_layers * dense_lora + moe_layers * moe_lora

    embedding = V * h
    if mt == "gpt2":
        embedding += int(cfg.get("n_positions") or cfg.get("max_position_embeddings") or 1024) * h
    lm_head = 0 if a.tied_embeddings else V * h + (V if mt == "phi" else 0)
    final_norm = norm_params
    norms = L * layer_norms + final_norm
    total = embedding + lm_head + layers_total + final_norm
    active = embedding + lm_head + layers_active + final_norm
    return ParamBreakdown(
        total=int(total),
        active=int(active),
        embedding=int(embedding),
        lm_head=int(lm_head),
        norms=int(norms),
        linear=int(total - embedding - lm_head - norms),
        lora_targets=int(lora_targets),
    )


def params_from_config(config: dict[str, Any]) -> int:
    """Total parameter count of a causal LM from its `config.json` dict (no weights needed)."""
    return param_breakdown(config).total


def checkpoint_bytes_of(safetensors_params: dict[str, int] | None, params: int, config: dict[str, Any]) -> int:
    """Download size of the weights: per-dtype counts from the Hub, else params x the config's dtype."""
    if safetensors_params:
        return int(sum(n * DTYPE_BYTES.get(str(dt).upper(), 2) for dt, n in safetensors_params.items()))
    cfg = text_config(config)
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or config.get("torch_dtype") or "bfloat16")
    return int(params * CONFIG_DTYPE_BYTES.get(dtype, 2))


def facts_from_config(
    model_id: str,
    config: dict[str, Any],
    *,
    safetensors_total: int | None = None,
    safetensors_params: dict[str, int] | None = None,
    sha: str | None = None,
    gated: bool = False,
) -> ModelFacts:
    """Build `ModelFacts` from a config dict and (optionally) the Hub's safetensors totals. Pure."""
    arch = architecture_from_config(config)
    breakdown = param_breakdown(config)
    notes: list[str] = []
    if safetensors_total:
        params, source = int(safetensors_total), "safetensors"
        gap = abs(params - breakdown.total) / params
        if gap > 0.05:
            notes.append(
                f"The checkpoint holds {params / 1e9:.2f}B parameters but the text model's config adds up to "
                f"{breakdown.total / 1e9:.2f}B (a vision/audio tower, a head stored twice, or extra modules): "
                "memory uses the checkpoint total."
            )
    else:
        params, source = breakdown.total, "config"
        notes.append(
            "The Hub has no safetensors metadata for this repo: the parameter count comes from config.json "
            "arithmetic (usually within 1-2%)."
        )
    if arch.is_moe:
        notes.append(
            f"Mixture of experts: {arch.num_experts} experts, {arch.experts_per_token} per token; all weights sit in "
            "memory, compute follows the active parameters."
        )
    return ModelFacts(
        model_id=model_id,
        sha=sha,
        arch=arch,
        params=params,
        params_source=source,
        breakdown=breakdown,
        checkpoint_bytes=checkpoint_bytes_of(safetensors_params, params, config),
        gated=gated,
        notes=tuple(notes),
        hazards=model_hazards(config),
    )


# ----------------------------------------------------------------------------- the Hub (service)
# Public, non-gated repos' facts are shared by everyone; gated/private ones are keyed by the visitor's token hash.
FACTS_CACHE: TTLCache[ModelFacts] = TTLCache(ttl_s=600.0, max_items=128)


def clear_cache() -> None:
    FACTS_CACHE.clear()


def _config_json(session: HubSession, model_id: str, revision: str | None, *, isolated: bool, gated: bool) -> Any:
    """config.json, parsed. Gated/private repos go through a throw-away cache (see `HubSession.download`)."""
    try:
        config = session.download_json(model_id, "config.json", revision=revision, isolated=isolated)
    except FileNotFoundError:
        raise InvalidInput(
            f"'{model_id}' has no config.json: it is not a transformers model (GGUF-only or adapter-only "
            "repos cannot be fine-tuned here; use the base model's id)."
        ) from None
    except (RepoNotFound, MissingPermission, InvalidToken) as err:  # refused although model_info answered
        raise (GatedRepo(model_id) if gated else err) from None
    if not isinstance(config, dict):
        raise InvalidInput(f"'{model_id}' has a config.json that is not a JSON object.")
    return config


def safetensors_total(folder: Path) -> tuple[int | None, dict[str, int]]:
    """Parameters in a local model folder's safetensors files, from their headers (no weights read)."""
    counts: dict[str, int] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with open(path, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if not 0 < size < 100_000_000:
                continue
            header = json.loads(fh.read(size))
        for name, entry in header.items():
            if name != "__metadata__" and isinstance(entry, dict) and "shape" in entry:
                numel = 1
                for dim in entry["shape"]:
                    numel *= int(dim)
                counts[str(entry.get("dtype", "F32"))] = counts.get(str(entry.get("dtype", "F32")), 0) + numel
    return (sum(counts.values()) or None), counts


def local_model_facts(path: str) -> ModelFacts:
    """Facts of a model folder on this machine (a validated path): config.json and the safetensors headers."""
    folder = Path(path)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise InvalidInput(f"{folder / 'config.json'} is not valid JSON.") from None
    if not isinstance(config, dict):
        raise InvalidInput(f"{folder / 'config.json'} is not a JSON object.")
    total, counts = safetensors_total(folder)
    return facts_from_config(path, config, safetensors_total=total, safetensors_params=counts or None)


def get_model_facts(session: HubSession, model_id: str, *, revision: str | None = None) -> ModelFacts:
    """Parameter count and architecture of a Hub model, from its metadata and config.json (no weights).

    Args:
        session: the visitor's session (their token for gated or private models; anonymous otherwise).
        model_id: `owner/name` (a pasted Hub URL works too).
        revision: branch, tag or commit (default: the main branch).

    Raises:
        InvalidInput: bad id, no config.json, or a config without transformer numbers.
        RepoNotFound / GatedRepo / HubUnavailable: from the Hub.

    Example:
        >>> get_model_facts(HubSession(None), "Qwen/Qwen2.5-0.5B").params
        494032768
    """
    if looks_like_path(model_id):
        return local_model_facts(validate_local_path(model_id, "model"))
    model_id = validate_repo_id(model_id, "model")
    rev = revision or "main"
    for scope in ("public", session.cache_scope):
        cached = FACTS_CACHE.get((model_id, rev, scope))
        if cached is not None:
            return cached
    info = session.model_info(model_id, revision=revision)
    gated = bool(info.gated)
    private = bool(getattr(info, "private", False))
    config = _config_json(session, model_id, info.sha or revision, isolated=gated or private, gated=gated)
    st = getattr(info, "safetensors", None)
    facts = facts_from_config(
        model_id,
        config,
        safetensors_total=getattr(st, "total", None) if st else None,
        safetensors_params=dict(getattr(st, "parameters", None) or {}) if st else None,
        sha=info.sha,
        gated=gated,
    )
    if gated:
        facts = replace(facts, notes=(*facts.notes, "Gated model: your account has access."))
    public = not gated and not private
    return FACTS_CACHE.put((model_id, rev, "public" if public else session.cache_scope), facts)
