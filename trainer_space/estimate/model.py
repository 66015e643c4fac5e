"""Peak GPU memory, training time and cost of a TRL job on every Jobs flavor, and the one to pick.

Pure arithmetic on `ModelFacts` (estimate/model_facts.py) and `Flavor`s (hub/hardware.py);
`estimate/service.py` is the service entry point that fetches those from the Hub first. No torch,
no weights: an estimate is a few thousand float operations.

Assumptions follow what job_templates/train.py runs (TRL 1.16 defaults unless it overrides them):

* full fine-tuning loads the model in float32 (TRL `ModelConfig.dtype` default) and trains with bf16 autocast
  (fp16 on T4): "mixed precision", AdamW (torch) with its two moments in the parameters' dtype;
* LoRA / QLoRA load the frozen base in bf16 (fp16 on T4); LoRA adapters on "all-linear", r=16, dropout 0.05,
  kept in float32 by PEFT (TRL casts QLoRA adapters to bf16); QLoRA = bitsandbytes NF4 with double quantisation;
* the speed settings (`speed_rules.py`), decided per flavor as the job decides them: SFT packs (BFD, padding-free:
  no padding token is computed) with a flash-attention kernel on Ampere or newer GPUs, else SDPA with one packed row
  per micro-batch and a (tokens x tokens) mask; other methods pad each batch to its longest row (the width follows the
  measured length distribution: `padded_width`); Liger kernels on GPUs; gradient checkpointing where the job needs it
  to fit ("auto": off when the flavor holds the job without it), or as the visitor forced it; SDPA / flash attention
  keep no seq^2 attention matrix;
* several GPUs: one process per GPU (DDP, full replica per GPU); `--fsdp` shards (FULL_SHARD) when asked.

Every constant below names its source. Those marked "measured" were read off transformers 5.23 / PEFT 0.21 on
CPU, with torch's saved-tensor hooks and its profiler's allocation events (bench/memory_cpu.py reproduces them);
those marked "assumption" are ours, and are what the GPU benchmark (bench/estimate_vs_gpu.py) is there to
calibrate. docs/estimate.md explains the model in prose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from ..catalog import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_GRAD_ACCUM,
    DEFAULT_MAX_LENGTH,
    GRPO_MAX_COMPLETION_LENGTH,
    GRPO_NUM_GENERATIONS,
    LORA_DROPOUT,
    LORA_R,
    AutoSettings,
    MethodSpec,
    auto_settings,
    method_spec,
    packed_rows,
    submit_timeout_s,
)
from ..hub.hardware import Flavor
from ..validation import format_timeout
from .model_facts import ModelFacts
from .speed_rules import SpeedChoice, choose_speed, packed_micro_batch

GIB = 1024**3

# ----------------------------------------------------------------------------- TRL / template defaults
SAVE_STEPS = 100  # job_templates/train.py: save_steps=100, hub_strategy="checkpoint"
DEFAULT_MEAN_TOKENS = 512  # used when the Dataset tab has not measured the rows
DEFAULT_ROWS = 10_000  # used only when the dataset viewer cannot count the rows (a note says so)

# ----------------------------------------------------------------------------- memory constants
# Bytes of state per trainable parameter with AdamW: weights + gradients + 2 moments, each in the parameters'
# dtype (torch.optim.AdamW keeps exp_avg / exp_avg_sq like the parameter). The ZeRO paper (Rajbhandari et al.
# 2020, sec. 3.1) counts 16 bytes/param for mixed-precision Adam (2 fp16 weights + 2 fp16 grads + 12 for fp32
# master, m, v); TRL's float32-loaded model gives the same 16 as 4 (weights) + 4 (grads) + 8 (m, v), with the
# 16-bit weights appearing as autocast copies below. HF accelerate's memory calculator: "Adam ~ 4x model size".
ADAM_MOMENTS = 2
# bf16 copies of the weights made by autocast and cached for the whole forward (torch.autocast caches casts of
# leaf tensors that require grad): 2 bytes per matmul weight. This is why LLaMA-Factory's table says 18x GB for
# full AMP where the ZeRO count says 16x (anchors.md: "full AMP 18x GB ... for 7B: 120 GB").
AUTOCAST_COPY_BYTES = 2
# QLoRA, Dettmers et al. 2023 ("QLoRA", sec. 3): NF4 weights are 4 bits; double quantisation brings the
# quantisation constants from 0.5 to 0.127 bits per parameter => (4 + 0.127) / 8 bytes per quantised weight.
# Embeddings, the LM head and norms are not quantised (transformers keeps the output head in 16 bit).
NF4_BYTES = (4 + 0.127) / 8

# Activations saved for backward, bytes per token per decoder layer, by dtype of the residual stream.
# Measured (bench/memory_cpu.py, transformers 5.23 Llama/Qwen2 modules, SDPA): with h = hidden, q = heads x
# head_dim, kv = kv_heads x head_dim, I = MLP width, n = heads:
#   fp32 residual (mixed precision, fp32 master weights):  26 h + 4 q + 4 kv + 8 I + 4 n
#   16-bit residual (bf16/fp16 weights: LoRA, QLoRA):      16 h + 4 q + 4 kv + 8 I + 4 n
# Same structure as Korthikanti et al. 2022 ("Reducing Activation Recomputation", eq. 2: sbh(34 + 5as/h) for
# GPT with 4h MLP and dropout); the 5as/h term is gone with SDPA/FlashAttention (no s x s matrix is stored)
# and the gated MLP keeps four I-wide tensors (gate, up, act(gate), product) = 8 I bytes.
ACT_H = {"mixed": 26, "half": 16}
ACT_Q, ACT_KV, ACT_MLP_GATED, ACT_MLP_PLAIN, ACT_HEAD = 4, 4, 8, 6, 4
# Liger's SwiGLU (LigerSiLUMulFunction) saves only gate and up and recomputes silu(gate) in backward; the product is
# still saved as the down projection's input: 3 I-wide 16-bit tensors instead of 4 (derived from its autograd
# function; RMSNorm and RoPE savings are not counted). Assumption until measured on a GPU (bench/train_gpu.py).
ACT_MLP_GATED_LIGER = 6
# Packed rows without a flash kernel: SDPA gets a boolean (tokens x tokens) block-diagonal mask, expanded to the
# computation's dtype by the kernel: 1 + 2 bytes per pair of tokens, alive through forward and backward.
PACKED_MASK_BYTES = 3
# Per token outside the layers (embedding output, final norm): measured 10 h (fp32 stream) / 8 h (16 bit).
ACT_OUTSIDE_H = {"mixed": 10, "half": 8}
# With gradient checkpointing each layer keeps only its input (the residual stream: 4 or 2 bytes x h), and one
# layer is recomputed at a time during backward: its activations plus their gradients ~ 2 x one layer. That
# happens after the loss's own backward has freed the logits, so the two transients do not add up.
CKPT_RECOMPUTE_LAYERS = 2
# LoRA adds, per adapted linear and per element of its input, the dropout mask and the 16-bit copy of the
# dropped-out input that lora_A saves (PEFT lora.Linear.forward: x -> cast to fp32 -> dropout -> lora_A -> lora_B):
# measured 4.5 bytes with lora_dropout=0.05 (TRL's default) and 0.5 bytes with lora_dropout=0.
LORA_DROPOUT_BYTES, LORA_NODROPOUT_BYTES = 4.5, 0.5
# The LM head. TRL 1.16's SFT, DPO, KTO and GRPO trainers patch the model with a fused, chunked LM head
# (trl.trainer.utils.add_fused_lm_head -> trl/kernels/chunked_logprob.py): the [tokens, vocab] logits are never
# materialised. What it allocates: one [min(tokens, 4096), 32768] 16-bit tile, a 16-bit copy of a 32768-row slice
# of the head weight, and in backward an fp32 gradient for the hidden states ([tokens, h]) and, when the head is
# trained (full fine-tuning), an fp32 gradient for the whole head ([vocab, h]).
FUSED_TOKEN_CHUNK = 4096  # trl/kernels/chunked_logprob.py TOKEN_CHUNK_SIZE
FUSED_VOCAB_CHUNK = 32768  # trl/trainer/utils.py _CHUNKED_LOGPROB_CHUNK_SIZE
# Without that head (plain transformers, `fused_lm_head=False`, used by bench/memory_cpu.py), logits cost, per token
# per vocabulary entry, measured (bench/memory_cpu.py, varying only the vocabulary): 14 bytes during the loss's
# backward = the 16-bit logits the model returns (2), ForCausalLMLoss's fp32 upcast (4), the fp32 log-softmax
# cross-entropy saves (4) and its fp32 gradient (4); 10 at the end of the forward. With a 152k vocabulary that is
# 2 MB per token: the fused head is what makes long sequences on small Qwen models fit.
LOGITS_BYTES = 14
LOGITS_FORWARD_BYTES = 10
# generation logits (GRPO sampling): fp32 logits + softmax probabilities for the next token
GEN_LOGITS_BYTES = 8
# Framework: the CUDA context, cuBLAS workspaces and kernels (~0.5-1 GB, not visible to torch's allocator)
# plus the caching allocator's fragmentation on top of what tensors occupy (PyTorch CUDA memory notes; we use 8%).
CUDA_CONTEXT_GIB = 0.75
FRAGMENTATION = 0.08
# "Fits" leaves this share of the card free (ECC-reserved memory, spikes the model does not see).
SAFETY = 0.90

# ----------------------------------------------------------------------------- time constants (assumptions)
# Model FLOPs utilisation by model size: small models spend relatively more time in memory-bound kernels
# (norms, fp32 residual adds, the chunked LM head). PaLM (Chowdhery et al. 2022) reports 46% MFU on a far more
# tuned stack; HF Trainer + SDPA on one GPU is usually 0.3-0.4 for mid-size models. These figures are
# assumptions until bench/estimate_vs_gpu.py has been run on a GPU.
MFU_BY_SIZE = ((1e9, 0.22), (3e9, 0.30), (15e9, 0.35), (math.inf, 0.40))
# data-parallel scaling efficiency per doubling of GPUs (gradient all-reduce over PCIe/NVLink)
SCALING_PER_DOUBLING = 0.9
# QLoRA dequantises every NF4 weight on each use (forward, recompute and backward): we assume it trains 1.4x
# slower than LoRA in bf16. Assumption.
QLORA_SLOWDOWN = 1.4
# padding: without packing every batch is padded to its longest row (TRL default packing=False). Without a measured
# length distribution we assume 15% padding; with one, the expected longest of b rows is approximated from the mean
# and the 95th percentile: mean + (p95 - mean) x (1 - 1/b) (uniform lengths 20-900, b=4: 757 vs 724 exact).
PADDING_OVERHEAD = 1.15
# Liger kernels (RMSNorm, RoPE, SwiGLU fused in Triton): +10% throughput. Assumption: the Liger paper (Hsu et al.
# 2024, arXiv 2410.10989) reports +20% end to end with its fused cross-entropy, which TRL's own chunked LM head
# replaces here; bench/train_gpu.py measures it when a GPU is lent.
LIGER_THROUGHPUT = 1.10
# GRPO generation with transformers' generate (TRL's default use_vllm=False): each decoding step reads all
# weights once (memory-bound) and pays Python/kernel-launch time per layer in eager mode; we assume 0.8 ms per
# layer per step (~40 tokens/s per sequence for a 32-layer model). Assumptions.
GEN_BANDWIDTH_EFFICIENCY = 0.6
GEN_SECONDS_PER_LAYER_STEP = 0.8e-3
# AdamW step: reads and writes weights, grads and both moments once (memory-bound)
OPTIMIZER_BANDWIDTH_EFFICIENCY = 0.7
# start-up and shut-down, assumptions: scheduling + uv image pull + dependency install 3-5 min (we take 4);
# Hub downloads ~200 MB/s, uploads ~100 MB/s; local disk ~1 GB/s for checkpoints; TRL tokenisation (chat
# template + tokenizer, one process) ~2000 rows/s.
STARTUP_S = 240
LOCAL_STARTUP_S = 30  # this machine: no scheduling, no image, the environment already there (imports, loading)
DOWNLOAD_BPS = 200e6
UPLOAD_BPS = 100e6
DISK_BPS = 1e9
TOKENIZE_ROWS_PER_S = 2000
FINAL_PUSH_FIXED_S = 60

PRECISIONS = ("auto", "mixed", "half")


# ----------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class EstimateInputs:
    """What the job will do, under TRL's own names (a `TrainingConfig` converts with `estimate_inputs()`).

    Values are trusted: validate them first (the typed config does, at the edge). Defaults follow the Train tab.
    """

    method: str = "sft"
    peft: str = "lora"
    max_length: int = DEFAULT_MAX_LENGTH
    num_train_epochs: float | None = 1.0  # None: auto (catalog.auto_settings)
    per_device_train_batch_size: int | None = DEFAULT_BATCH_SIZE  # None: auto
    gradient_accumulation_steps: int | None = DEFAULT_GRAD_ACCUM  # None: auto
    gradient_checkpointing: bool | str = True  # True/"on", False/"off", or "auto": off where the flavor fits without
    num_rows: int = DEFAULT_ROWS
    mean_tokens: float = DEFAULT_MEAN_TOKENS
    max_steps: int | None = None
    precision: str = "auto"  # auto: mixed for full, half (bf16/fp16 base) for LoRA/QLoRA, as the template does
    lora_r: int = LORA_R
    lora_dropout: float = LORA_DROPOUT
    num_generations: int = GRPO_NUM_GENERATIONS
    max_completion_length: int = GRPO_MAX_COMPLETION_LENGTH
    beta: float | None = None  # None: TRL's default for the method
    fsdp: bool = False
    learning_rate: float | None = None  # None: auto (not used by the arithmetic; resolved with the other autos)
    packing: str = "off"  # "auto": SFT packs where the model allows it (the Train tab's default); "off": TRL's default
    use_liger_kernel: str = "off"  # "auto": Liger kernels on CUDA GPUs (the Train tab's default)
    p95_tokens: float | None = None  # measured 95th percentile of the row lengths (padding of unpacked batches)
    # what the job does on one flavor (set by `resolve_for_flavor`): packed rows, a flash kernel, Liger kernels
    packed: bool = False
    flash: bool = False
    liger: bool = False

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing on (an unresolved "auto" counts as on: the safe side)."""
        return self.gradient_checkpointing not in (False, "off")

    @property
    def spec(self) -> MethodSpec:
        return method_spec(self.method)

    @property
    def resolved_precision(self) -> str:
        if self.precision != "auto":
            return self.precision
        return "mixed" if self.peft == "full" else "half"

    @property
    def needs_reference(self) -> bool:
        """DPO/KTO always compare with a reference policy; GRPO only when beta > 0. Reward models never."""
        return self.spec.needs_reference(self.beta)

    @property
    def sequences_per_example(self) -> int:
        return self.spec.sequences_per_example

    @property
    def grpo_lengths(self) -> tuple[int, int]:
        """(prompt, completion) token budget for GRPO: max_length is prompt + completion."""
        completion = min(self.max_completion_length, max(1, self.max_length // 2))
        return max(self.max_length - completion, 1), completion


# ----------------------------------------------------------------------------- memory
@dataclass(frozen=True)
class MemoryBreakdown:
    """Per-GPU peak memory by term, in bytes. `allocated` is what torch.cuda.max_memory_allocated sees."""

    weights: float
    gradients: float
    optimizer: float
    autocast_copies: float
    adapter: float  # LoRA weights + gradients + optimizer states
    activations: float  # kept for backward through the whole step (checkpointing: layer inputs only)
    recompute: float  # checkpointing: one layer's activations and gradients while it is recomputed
    logits: float  # the LM head's memory during the loss's backward (fused head: tiles and fp32 gradients)
    logits_forward: float  # the same at the end of the forward
    reference: float
    generation: float  # GRPO: KV cache and sampling logits (not at the same time as training activations)
    ddp_buckets: float
    quant_scratch: float  # QLoRA: one dequantised weight matrix at a time
    notes: tuple[str, ...] = ()

    @property
    def static(self) -> float:
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + self.adapter
            + self.reference
            + self.ddp_buckets
            + self.quant_scratch
        )

    copies_in_backward: bool = True  # without checkpointing the linears keep the autocast copies for backward
    mask: float = 0.0  # packed rows under SDPA: the (tokens x tokens) mask, alive through forward and backward

    @property
    def dynamic(self) -> float:
        """The largest of the step's moments: end of forward, loss backward, layer backward, generation."""
        forward = self.autocast_copies + self.activations + self.logits_forward + self.mask
        copies = self.autocast_copies if self.copies_in_backward else 0.0
        backward = copies + self.activations + max(self.logits, self.recompute) + self.mask
        return max(forward, backward, self.generation)

    @property
    def allocated(self) -> float:
        return self.static + self.dynamic

    @property
    def overhead(self) -> float:
        return CUDA_CONTEXT_GIB * GIB + FRAGMENTATION * self.allocated

    @property
    def peak(self) -> float:
        return self.allocated + self.overhead

    @property
    def peak_gib(self) -> float:
        return self.peak / GIB

    def as_gib(self) -> dict[str, float]:
        terms = ("weights", "gradients", "optimizer", "autocast_copies", "adapter", "activations", "recompute")
        terms += ("logits", "logits_forward")
        terms += ("reference", "generation", "ddp_buckets", "quant_scratch", "mask")
        out = {t: round(getattr(self, t) / GIB, 3) for t in terms}
        out |= {"overhead": round(self.overhead / GIB, 3), "peak": round(self.peak_gib, 3)}
        return out


def lora_params(facts: ModelFacts, r: int) -> int:
    """LoRA parameters on "all-linear": r x (in + out) for every adapted Linear (PEFT, Hu et al. 2021)."""
    return int(r * facts.breakdown.lora_targets)


def activation_bytes_per_token_layer(facts: ModelFacts, stream: str, liger: bool = False) -> float:
    """Saved activations of one decoder layer per token (see ACT_* above)."""
    a = facts.arch
    gated = ACT_MLP_GATED_LIGER if liger else ACT_MLP_GATED
    mlp = (gated if a.gated_mlp else ACT_MLP_PLAIN) * a.mlp_width_per_token
    return ACT_H[stream] * a.hidden_size + ACT_Q * a.q_dim + ACT_KV * a.kv_dim + mlp + ACT_HEAD * a.num_heads


def lora_activation_bytes_per_token_layer(facts: ModelFacts, dropout: float) -> float:
    """Extra saved tensors of LoRA adapters per token per layer (inputs of the adapted linears)."""
    a = facts.arch
    inputs = 3 * a.hidden_size + a.q_dim  # q, k, v take h; o takes q_dim
    if a.is_moe:
        if a.shared_expert_intermediate_size:
            inputs += 2 * a.hidden_size + a.shared_expert_intermediate_size
    else:
        inputs += 2 * a.hidden_size + a.intermediate_size  # gate, up take h; down takes I
    return inputs * (LORA_DROPOUT_BYTES if dropout > 0 else LORA_NODROPOUT_BYTES)


def sequences_per_micro_batch(inp: EstimateInputs) -> int:
    """Sequences in one forward: DPO concatenates chosen+rejected, reward models score pairs, KTO adds KL rows."""
    return inp.per_device_train_batch_size * inp.sequences_per_example


def lm_head_bytes(
    facts: ModelFacts, tokens: float, *, trained: bool, stream: str, fused: bool = True
) -> tuple[float, float]:
    """(backward, forward) bytes of the LM head over `tokens` scored positions (see FUSED_* / LOGITS_BYTES)."""
    a = facts.arch
    if tokens <= 0:
        return 0.0, 0.0
    if not fused:
        return tokens * a.vocab_size * LOGITS_BYTES, tokens * a.vocab_size * LOGITS_FORWARD_BYTES
    v_chunk = min(a.vocab_size, FUSED_VOCAB_CHUNK)
    forward = min(tokens, FUSED_TOKEN_CHUNK) * v_chunk * 2 + v_chunk * a.hidden_size * 2
    grad_hidden = tokens * a.hidden_size * (4 + (0 if stream == "mixed" else 2))  # fp32, then cast to the stream
    grad_head = a.vocab_size * a.hidden_size * 4 if trained else 0.0
    return forward + grad_hidden + grad_head, forward


def memory_breakdown(
    facts: ModelFacts, inp: EstimateInputs, *, gpus: int = 1, fused_lm_head: bool = True
) -> MemoryBreakdown:
    """Per-GPU peak memory of one training step of `inp` on `gpus` GPUs (DDP, or FSDP when `inp.fsdp`).

    `fused_lm_head=False` models plain transformers (full logits), as bench/memory_cpu.py runs it.
    """
    a = facts.arch
    precision = inp.resolved_precision
    stream = "mixed" if precision == "mixed" else "half"
    wbytes = 4 if precision == "mixed" else 2  # bytes per weight as loaded
    notes: list[str] = []

    params = facts.params
    head = facts.head_params
    score_head = inp.spec.score_head
    if score_head:  # AutoModelForSequenceClassification: the LM head is replaced by a 1-output score
        params = params - head + a.hidden_size
        head = 0
    # weights autocast casts and caches: the decoder layers' matrices, plus the head when the plain (unfused)
    # head multiplies through autocast; TRL's fused head casts 32k-row slices itself (in `lm_head_bytes`)
    matmul_params = facts.linear_params - (head if score_head else 0)
    if not fused_lm_head and not score_head:
        matmul_params += facts.head_params or facts.embedding_params

    # ---- weights, gradients, optimizer states, adapters
    adapter = gradients = optimizer = copies = quant_scratch = 0.0
    if inp.peft == "full":
        weights = params * wbytes
        gradients = params * wbytes
        optimizer = params * wbytes * ADAM_MOMENTS
        if precision == "mixed":
            copies = matmul_params * AUTOCAST_COPY_BYTES
    else:
        n_lora = lora_params(facts, inp.lora_r)
        if inp.peft == "lora":
            weights = params * 2.0
            adapter = n_lora * (4 + 4 + 4 * ADAM_MOMENTS)  # PEFT keeps adapters in fp32 (autocast_adapter_dtype)
        else:
            linear = max(facts.linear_params - (head if score_head else 0), 0)
            weights = linear * NF4_BYTES + (params - linear) * 2.0
            adapter = n_lora * (2 + 2 + 2 * ADAM_MOMENTS)  # TRL casts QLoRA adapters to bf16
            quant_scratch = 2.0 * a.hidden_size * max(a.intermediate_size, a.moe_intermediate_size, a.q_dim)
    # ---- reference model (weights only; run under no_grad, its activations are transient)
    reference = 0.0
    if inp.needs_reference and inp.peft == "full":
        reference = params * wbytes  # TRL loads it with the policy's dtype
    elif inp.needs_reference:
        notes.append("The reference model is the base with the adapter switched off: no second copy in memory.")

    # ---- activations and logits
    seqs = sequences_per_micro_batch(inp)
    if inp.spec.generates:
        prompt, completion = inp.grpo_lengths
        seq_len, logit_tokens = prompt + completion, seqs * completion  # TRL keeps logits of completions only
    else:
        seq_len = inp.max_length
        logit_tokens = 0 if score_head else seqs * seq_len
    tokens = seqs * seq_len  # the worst batch: a row at max_length sets the padded width
    per_layer = activation_bytes_per_token_layer(facts, stream, inp.liger)
    if inp.peft != "full":
        per_layer += lora_activation_bytes_per_token_layer(facts, inp.lora_dropout)
    checkpointing = inp.checkpointing or inp.fsdp  # the template turns on FSDP's own checkpointing
    if checkpointing:
        kept = a.num_layers * (4 if stream == "mixed" else 2) * a.hidden_size
        recompute = tokens * CKPT_RECOMPUTE_LAYERS * per_layer
    else:
        kept, recompute = a.num_layers * per_layer, 0.0
    activations = tokens * (kept + ACT_OUTSIDE_H[stream] * a.hidden_size)
    logits, logits_forward = lm_head_bytes(
        facts, logit_tokens, trained=inp.peft == "full", stream=stream, fused=fused_lm_head
    )
    # packed rows under SDPA: the block-diagonal mask over the micro-batch's flattened tokens
    mask = float(tokens) ** 2 * PACKED_MASK_BYTES if inp.packed and not inp.flash else 0.0

    # ---- GRPO generation: KV cache of the whole generation batch plus sampling logits
    generation = 0.0
    if inp.spec.generates:
        prompt, completion = inp.grpo_lengths
        gen_seqs = inp.per_device_train_batch_size * inp.gradient_accumulation_steps  # steps_per_generation
        kv_bytes = wbytes
        generation = gen_seqs * (prompt + completion) * a.num_layers * 2 * a.kv_dim * kv_bytes
        generation += gen_seqs * a.vocab_size * GEN_LOGITS_BYTES

    # ---- several GPUs
    ddp_buckets = 0.0
    if gpus > 1 and inp.fsdp:
        shard = 1.0 / gpus
        # FSDP FULL_SHARD: weights, grads and optimizer states split across GPUs; the layer being computed and the
        # one prefetched are gathered in 16 bit (PyTorch FSDP docs), plus the embeddings/head when gathered.
        layer_params = (params - facts.embedding_params - head) / max(a.num_layers, 1)
        gathered = 2 * 2 * layer_params + 2 * max(facts.embedding_params, head)
        weights, gradients, optimizer = weights * shard + gathered, gradients * shard, optimizer * shard
        reference, adapter = reference * shard, adapter * shard
        copies = 0.0  # FSDP mixed precision casts per unit, inside `gathered`
    elif gpus > 1:
        # DDP (torch default gradient_as_bucket_view=False): gradient buckets hold a second copy of the grads
        # (PyTorch DistributedDataParallel docs, "gradient_as_bucket_view ... saves memory equal to the grads")
        ddp_buckets = gradients + (n_lora_bytes(facts, inp) if inp.peft != "full" else 0.0)
    return MemoryBreakdown(
        weights=weights,
        gradients=gradients,
        optimizer=optimizer,
        autocast_copies=copies,
        adapter=adapter,
        activations=activations,
        recompute=recompute,
        logits=logits,
        logits_forward=logits_forward,
        reference=reference,
        generation=generation,
        ddp_buckets=ddp_buckets,
        quant_scratch=quant_scratch,
        notes=tuple(notes),
        copies_in_backward=not checkpointing,
        mask=mask,
    )


def n_lora_bytes(facts: ModelFacts, inp: EstimateInputs) -> float:
    """Bytes of LoRA gradients (DDP buckets copy them)."""
    return lora_params(facts, inp.lora_r) * (4 if inp.peft == "lora" else 2)


# ----------------------------------------------------------------------------- time
@dataclass(frozen=True)
class TimeBreakdown:
    """Seconds by phase, and what they were computed from."""

    startup: float  # scheduling, image pull, dependency install
    download: float  # model weights
    tokenize: float
    train: float  # forward + backward + optimizer steps
    generation: float  # GRPO sampling
    checkpoints: float  # local writes of checkpoints (save_steps=100)
    push: float  # final upload
    tokens: int  # training tokens (forward + backward)
    steps: int  # optimizer steps
    flops: float

    @property
    def total(self) -> float:
        return (
            self.startup + self.download + self.tokenize + self.train + self.generation + self.checkpoints + self.push
        )

    @property
    def hours(self) -> float:
        return self.total / 3600


def mfu_for(params: float) -> float:
    return next(m for limit, m in MFU_BY_SIZE if params < limit)


def body_params(facts: ModelFacts) -> float:
    """Active parameters of the decoder layers (what every token multiplies through)."""
    return max(facts.active_params - facts.embedding_params - facts.head_params, 0)


def flops_per_token(facts: ModelFacts, inp: EstimateInputs, seq_len: float) -> float:
    """Training FLOPs per token: Kaplan et al. 2020 / Chinchilla (Hoffmann et al. 2022, app. F).

    forward 2N + backward 4N = 6N for full training; LoRA skips weight gradients (backward 2N) = 4N; gradient
    checkpointing recomputes the layers' forward (+2N). Attention scores add 2 x layers x q_dim x context per
    forward (causal: half of s^2), x3 for forward+backward (+1 forward with checkpointing). TRL's fused LM head
    recomputes its logits tile in backward: 2 (forward) + 2 (recompute) + 2 (hidden grad) + 2 (weight grad, full
    only) x vocab x hidden.
    """
    a = facts.arch
    n = body_params(facts)
    passes = 3 if inp.peft == "full" else 2  # forward = 1, backward = 2 (full) or 1 (activation grads only)
    recompute = inp.checkpointing or inp.fsdp
    head = 0.0 if inp.spec.score_head else a.vocab_size * a.hidden_size
    attn = 2 * a.num_layers * a.q_dim * seq_len  # per forward, causal
    flops = (passes + recompute) * 2 * n + (8 if inp.peft == "full" else 6) * head + (3 + recompute) * attn
    if inp.needs_reference:
        flops += 2 * (n + head) + attn  # reference forward (separate model, or the base with the adapter off)
    return flops


def achieved_flops(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor) -> float:
    """FLOP/s the job achieves on `flavor`: peak x MFU x multi-GPU scaling (/ QLoRA dequantisation)."""
    gpus = max(flavor.gpus, 1)
    efficiency = mfu_for(facts.active_params) * SCALING_PER_DOUBLING ** math.log2(gpus)
    if inp.liger:
        efficiency *= LIGER_THROUGHPUT
    if inp.peft == "qlora":
        efficiency /= QLORA_SLOWDOWN
    return max(flavor.tflops, 1.0) * 1e12 * gpus * efficiency


def optimizer_step_seconds(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor) -> float:
    """One AdamW step: read weights, grads and both moments, write weights and moments (memory-bound)."""
    wbytes = 4 if inp.resolved_precision == "mixed" else 2
    trainable = facts.params if inp.peft == "full" else lora_params(facts, inp.lora_r)
    if inp.peft != "full":
        wbytes = 4 if inp.peft == "lora" else 2  # adapters: fp32 (LoRA), bf16 (QLoRA)
    moved = trainable * wbytes * (2 + 2 * ADAM_MOMENTS + 1)
    shards = max(flavor.gpus, 1) if inp.fsdp else 1
    return moved / (max(flavor.bandwidth_gbs, 1.0) * 1e9 * OPTIMIZER_BANDWIDTH_EFFICIENCY) / shards


def seconds_per_step(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor, *, seq_len: float) -> float:
    """One optimizer step with every sequence `seq_len` tokens long (what bench/estimate_vs_gpu.py times)."""
    gpus = max(flavor.gpus, 1)
    sequences = inp.per_device_train_batch_size * inp.gradient_accumulation_steps * gpus * inp.sequences_per_example
    flops = sequences * seq_len * flops_per_token(facts, inp, seq_len)
    return flops / achieved_flops(facts, inp, flavor) + optimizer_step_seconds(facts, inp, flavor)


def padded_width(inp: EstimateInputs, mean: float) -> float:
    """Tokens each row of an unpacked batch is padded to: the expected longest of the micro-batch's rows (from the
    95th percentile when measured, else PADDING_OVERHEAD), never past max_length."""
    batch = inp.per_device_train_batch_size or 1
    if batch <= 1:
        return mean
    if inp.p95_tokens and inp.p95_tokens > mean:
        return min(float(inp.max_length), mean + (min(inp.p95_tokens, inp.max_length) - mean) * (1 - 1 / batch))
    return min(float(inp.max_length), mean * PADDING_OVERHEAD)


def time_breakdown(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor) -> TimeBreakdown:
    """Wall-clock time of the whole job on `flavor`."""
    a = facts.arch
    gpus = max(flavor.gpus, 1)
    precision = inp.resolved_precision
    wbytes = 4 if precision == "mixed" else 2
    mean = min(inp.mean_tokens, inp.max_length)
    global_batch = inp.per_device_train_batch_size * inp.gradient_accumulation_steps * gpus  # rows (GRPO: completions)
    pairs = inp.sequences_per_example  # sequences per row in the forward pass
    if inp.spec.generates:
        prompt_budget, completion = inp.grpo_lengths
        seq = min(mean, prompt_budget) + completion  # completions assumed to run to max_completion_length
        padded = seq
        per_row = inp.num_generations  # every prompt yields num_generations completions
    elif inp.packed:  # BFD: rows of ~max_length real tokens, no padding; steps count packed rows
        seq = padded = mean
        per_row = packed_rows(1_000_000, mean, inp.max_length) / 1_000_000  # packed rows per example
    else:
        seq = mean
        padded = padded_width(inp, mean)
        per_row = 1
    # attention context: each document on its own (flash kernel, or a padded row), or the whole packed row (SDPA)
    context = inp.max_length if inp.packed and not inp.flash else padded
    if inp.max_steps:
        steps = inp.max_steps
        units = steps * global_batch  # rows (packed rows), or completions for GRPO
        rows = max(math.ceil(units / per_row), 1)
    else:
        rows = inp.num_rows
        units = rows * per_row * inp.num_train_epochs
        steps = max(math.ceil(units / global_batch), 1)
    sequences = units * pairs
    if inp.packed:  # a packed row holds max_length / mean documents' tokens
        sequences = rows * (inp.num_train_epochs if not inp.max_steps else 1) * pairs
    tokens = sequences * seq
    flops = sequences * padded * flops_per_token(facts, inp, context)
    train = flops / achieved_flops(facts, inp, flavor) + steps * optimizer_step_seconds(facts, inp, flavor)
    bandwidth = max(flavor.bandwidth_gbs, 1.0) * 1e9

    generation = 0.0
    if inp.spec.generates:
        prompt_budget, completion = inp.grpo_lengths
        gen_seqs = inp.per_device_train_batch_size * inp.gradient_accumulation_steps
        rounds = math.ceil(units / (gen_seqs * gpus))
        weight_bytes = facts.params * (NF4_BYTES if inp.peft == "qlora" else wbytes)
        kv_read = gen_seqs * (min(mean, prompt_budget) + completion / 2) * a.num_layers * 2 * a.kv_dim * wbytes
        step = max(
            (weight_bytes + kv_read) / (bandwidth * GEN_BANDWIDTH_EFFICIENCY),
            a.num_layers * GEN_SECONDS_PER_LAYER_STEP,
        )
        generation = rounds * completion * step

    saves = steps // SAVE_STEPS
    if inp.peft == "full":  # weights + optimizer states go into each checkpoint; the final model in its dtype
        ckpt_bytes = facts.params * wbytes * (1 + ADAM_MOMENTS)
        final_bytes = facts.params * wbytes
    else:
        final_bytes = lora_params(facts, inp.lora_r) * 4  # the adapter only
        ckpt_bytes = final_bytes * (1 + ADAM_MOMENTS)
    return TimeBreakdown(
        startup=LOCAL_STARTUP_S if flavor.is_local else STARTUP_S,
        download=0.0 if facts.model_id.startswith("/") else facts.checkpoint_bytes / DOWNLOAD_BPS,
        tokenize=rows / TOKENIZE_ROWS_PER_S,
        train=train,
        generation=generation,
        checkpoints=saves * ckpt_bytes / DISK_BPS,
        push=FINAL_PUSH_FIXED_S + final_bytes / UPLOAD_BPS,
        tokens=int(tokens),
        steps=int(steps),
        flops=flops,
    )


# ----------------------------------------------------------------------------- per flavor, recommendation
@dataclass(frozen=True)
class FlavorEstimate:
    flavor: Flavor
    memory: MemoryBreakdown
    time: TimeBreakdown
    inputs: EstimateInputs | None = None  # what the job does on this flavor (speed settings and checkpointing resolved)
    speed: dict[str, SpeedChoice] | None = None  # the job's packing, attention and Liger choices on this flavor

    @property
    def gradient_checkpointing(self) -> bool:
        """Whether the job checkpoints on this flavor (auto: only when it does not fit without)."""
        return self.inputs.checkpointing if self.inputs is not None else True

    @property
    def peak_gib(self) -> float:
        return self.memory.peak_gib

    @property
    def fits(self) -> bool:
        return self.flavor.trains and self.memory.peak <= SAFETY * self.flavor.memory_gb * GIB

    @property
    def hours(self) -> float:
        return self.time.hours

    @property
    def cost_usd(self) -> float:
        return self.time.hours * self.flavor.usd_per_hour

    def to_json(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor.name,
            "gpus": self.flavor.gpus,
            "vram_gb": round(self.flavor.vram_gb, 1),
            "peak_vram_gb": round(self.peak_gib, 2),
            "fits": self.fits,
            "hours": round(self.hours, 3),
            "cost_usd": round(self.cost_usd, 2),
            "usd_per_hour": round(self.flavor.usd_per_hour, 4),
        }


@dataclass(frozen=True)
class EstimateResult:
    """Every GPU flavor with its fit, time and cost; the recommendation and the timeout to submit with."""

    model: str
    params: int
    params_source: str
    inputs: EstimateInputs
    tokens: int
    flavors: tuple[FlavorEstimate, ...]
    recommended: str | None
    timeout: str | None
    timeout_s: int | None
    notes: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    prices_from_hub: bool = True
    local: bool = False  # the recommendation is for this machine (a local job), else for Hugging Face Jobs
    auto: AutoSettings | None = None  # epochs, batch, accumulation, learning rate (the visitor's, or the rule's)
    hazards: tuple[tuple[str, str], ...] = ()  # speed settings unsafe for the model (its config.json): (setting, why)

    @property
    def best(self) -> FlavorEstimate | None:
        return next((f for f in self.flavors if f.flavor.name == self.recommended), None)

    @property
    def cheapest_jobs(self) -> FlavorEstimate | None:
        """The cheapest Hugging Face Jobs flavor that fits, whatever the backend (named beside this machine)."""
        return recommend(tuple(f for f in self.flavors if not f.flavor.is_local))

    def to_json(self) -> dict[str, Any]:
        """The `/estimate` API answer."""
        jobs = self.cheapest_jobs
        return {
            "model": self.model,
            "params": self.params,
            "tokens": self.tokens,
            "backend": "local" if self.local else "hf-jobs",
            "flavors": [f.to_json() for f in self.flavors],
            "recommended": self.recommended,
            "timeout": self.timeout,
            "cheapest_jobs_flavor": {
                "flavor": jobs.flavor.name, "hours": round(jobs.hours, 3), "cost_usd": round(jobs.cost_usd, 2),
                "timeout": format_timeout(submit_timeout_s(jobs.time.total)),
            } if jobs else None,
            "notes": [*self.notes, *self.suggestions],
            "prices": "hub" if self.prices_from_hub else "built-in",
        }  # fmt: skip

    def verdict(self) -> str:
        """One plain-language paragraph for the visitor."""
        best = self.best
        jobs = self.cheapest_jobs
        if best is None and self.local and jobs is not None:
            return (
                f"**Does not fit on this machine.** On Hugging Face Jobs it fits on **{jobs.flavor.name}** (peak "
                f"{jobs.peak_gib:.1f} of {jobs.flavor.memory_gb:.4g} GB per GPU), about {_hours(jobs.hours)}, about "
                f"${jobs.cost_usd:,.2f}: run it there (Run on: Hugging Face Jobs)."
            )
        if best is None:
            smallest = min(self.flavors, key=lambda f: f.peak_gib, default=None)
            largest = max((f.flavor.vram_gb for f in self.flavors), default=0)
            text = "**Does not fit on any flavor.**"
            if smallest is not None:
                text += (
                    f" It needs about {smallest.peak_gib:.1f} GB per GPU; the largest GPU offered has {largest:g} GB "
                    "(and 10% is kept free)."
                )
            if self.suggestions:
                text += " What would make it fit:\n" + "\n".join(f"- {s}" for s in self.suggestions)
            return text
        return (
            f"**Fits on {'this machine' if best.flavor.is_local else best.flavor.name}** (peak {best.peak_gib:.1f} of "
            f"{best.flavor.memory_gb:.4g} GB {'per GPU' if best.flavor.is_gpu else 'of RAM'}), "
            f"about {_hours(best.hours)}, about ${best.cost_usd:,.2f}. Submit with timeout **{self.timeout}**."
        )


def _hours(hours: float) -> str:
    return f"{hours * 60:.0f} min" if hours < 1 else f"{hours:.1f} h"


def flavor_speed(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor) -> dict[str, SpeedChoice]:
    """The packing, attention and Liger choices the job makes on `flavor` (`speed_rules.choose_speed`)."""
    return choose_speed(
        inp.method, packing=inp.packing, liger=inp.use_liger_kernel, gpu=flavor.is_gpu,
        capability=flavor.compute_capability, half_precision=flavor.is_gpu, hazards=facts.hazards,
    )  # fmt: skip


def resolve_for_flavor(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor) -> EstimateInputs:
    """`inp` as the job runs it on `flavor`: speed settings on or off, packed rows one per micro-batch without a
    flash kernel (the same effective batch); gradient checkpointing still as asked ("auto" resolved by the caller)."""
    speed = flavor_speed(facts, inp, flavor)
    batch, accum = inp.per_device_train_batch_size or 1, inp.gradient_accumulation_steps or 1
    batch, accum = packed_micro_batch(batch, accum, speed)
    return replace(
        inp, packed=speed["packing"].on, flash=speed["attention"].on, liger=speed["liger"].on,
        per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
    )  # fmt: skip


def estimate_flavor(facts: ModelFacts, inp: EstimateInputs, flavor: Flavor) -> FlavorEstimate:
    """Memory and time of the job on `flavor`, with its speed settings; gradient checkpointing "auto" is off when the
    job fits on the flavor without it (about a third less compute), else on."""
    if not flavor.is_gpu and inp.precision == "auto":  # on a CPU the template loads and trains in float32
        inp = replace(inp, precision="mixed")
    gpus = max(flavor.gpus, 1)
    speed = flavor_speed(facts, inp, flavor)
    run = resolve_for_flavor(facts, inp, flavor)
    if run.gradient_checkpointing == "auto":
        off = replace(run, gradient_checkpointing=False)
        memory = memory_breakdown(facts, off, gpus=gpus)
        fits = flavor.trains and memory.peak <= SAFETY * flavor.memory_gb * GIB
        run = off if fits else replace(run, gradient_checkpointing=True)
    return FlavorEstimate(
        flavor, memory_breakdown(facts, run, gpus=gpus), time_breakdown(facts, run, flavor), run, speed
    )


def resolve_auto(facts: ModelFacts, inp: EstimateInputs) -> tuple[EstimateInputs, AutoSettings]:
    """Epochs, batch, accumulation and learning rate left to "auto" (None), chosen by `catalog.auto_settings` from
    the method, PEFT mode, model size and the rows and their lengths."""
    packs = choose_speed(inp.method, packing=inp.packing, gpu=False, hazards=facts.hazards)["packing"].on
    auto = auto_settings(
        inp.method, inp.peft, params_b=facts.params / 1e9, rows=inp.num_rows if inp.num_rows else None,
        mean_tokens=inp.mean_tokens, max_length=inp.max_length, packed=packs, num_generations=inp.num_generations,
        num_train_epochs=inp.num_train_epochs, per_device_train_batch_size=inp.per_device_train_batch_size,
        gradient_accumulation_steps=inp.gradient_accumulation_steps, learning_rate=inp.learning_rate,
    )  # fmt: skip
    resolved = replace(
        inp, num_train_epochs=auto.num_train_epochs, per_device_train_batch_size=auto.per_device_train_batch_size,
        gradient_accumulation_steps=auto.gradient_accumulation_steps, learning_rate=auto.learning_rate,
    )  # fmt: skip
    return resolved, auto


def recommend(estimates: tuple[FlavorEstimate, ...]) -> FlavorEstimate | None:
    """The cheapest flavor that fits (then the fastest, then the fewest GPUs)."""
    fitting = [e for e in estimates if e.fits]
    return min(fitting, key=lambda e: (round(e.cost_usd, 2), e.hours, e.flavor.gpus), default=None)


def suggestions_for(facts: ModelFacts, inp: EstimateInputs, flavors: tuple[Flavor, ...]) -> tuple[str, ...]:
    """Settings that would make the job fit somewhere, cheapest variant first (only used when nothing fits)."""
    tries: list[tuple[str, EstimateInputs]] = []
    if not inp.checkpointing:
        tries.append(("Turn on gradient checkpointing", replace(inp, gradient_checkpointing=True)))
    if inp.per_device_train_batch_size > 1:
        b, ga = 1, inp.per_device_train_batch_size * inp.gradient_accumulation_steps
        tries.append(
            (f"Use batch size 1 with gradient accumulation {ga} (same effective batch)",
             replace(inp, per_device_train_batch_size=b, gradient_accumulation_steps=ga, gradient_checkpointing=True))
        )  # fmt: skip
    for length in (inp.max_length // 2, inp.max_length // 4):
        if length >= 256:
            tries.append((f"Shorten max_length to {length}", replace(inp, max_length=length)))
    if inp.peft == "full":
        tries.append(("Use LoRA instead of full fine-tuning", replace(inp, peft="lora", precision="auto")))
    if inp.peft != "qlora":
        tries.append(("Use QLoRA (4-bit base)", replace(inp, peft="qlora", precision="auto")))
        tries.append(
            ("Use QLoRA with batch size 1 and gradient checkpointing",
             replace(inp, peft="qlora", precision="auto", per_device_train_batch_size=1,
                     gradient_accumulation_steps=inp.per_device_train_batch_size * inp.gradient_accumulation_steps,
                     gradient_checkpointing=True))
        )  # fmt: skip
    if not inp.fsdp and any(f.gpus > 1 for f in flavors):
        tries.append(("Shard the model with FSDP over several GPUs (the Train tab's FSDP option)",
                      replace(inp, fsdp=True)))  # fmt: skip
    out: list[str] = []
    for label, variant in tries:  # 4-bit QLoRA needs a GPU (bitsandbytes): never suggested for a CPU
        ests = tuple(estimate_flavor(facts, variant, f) for f in flavors if f.trains and (variant.peft != "qlora"
                                                                                          or f.is_gpu))  # fmt: skip
        if variant.fsdp:
            ests = tuple(e for e in ests if e.flavor.gpus > 1)
        best = recommend(ests)
        if best is not None:
            out.append(
                f"{label}: peak {best.peak_gib:.1f} GB per GPU, fits on {best.flavor.name} "
                f"(about {_hours(best.hours)}, ${best.cost_usd:,.2f})."
            )
    if not out:
        out.append("Nothing tried fits: pick a smaller model, or a shorter max_length with QLoRA.")
    return tuple(out)


def estimate_from_facts(
    facts: ModelFacts,
    inp: EstimateInputs,
    flavors: tuple[Flavor, ...],
    *,
    prices_from_hub: bool = True,
    notes: tuple[str, ...] = (),
    local: bool = False,
) -> EstimateResult:
    """The whole estimate from known facts (pure: no Hub, no torch).

    `local`: recommend this machine (the flavor named "local", when listed) rather than a Jobs flavor.
    """
    inp, auto = resolve_auto(facts, inp)
    gpu_flavors = tuple(f for f in flavors if f.trains)
    if inp.fsdp:
        gpu_flavors = tuple(f for f in gpu_flavors if f.gpus > 1) or gpu_flavors
    estimates = tuple(estimate_flavor(facts, inp, f) for f in gpu_flavors)
    estimates = tuple(sorted(estimates, key=lambda e: (e.flavor.usd_per_hour, e.flavor.name)))
    best = recommend(tuple(e for e in estimates if e.flavor.is_local == local))
    all_notes = [*notes, *facts.notes]
    if estimates:
        all_notes.extend(n for n in estimates[0].memory.notes if n not in all_notes)
    if not prices_from_hub:
        all_notes.append(
            "The Hub's hardware list could not be read: flavors and prices come from the built-in table, for the "
            "estimate only (not billed prices): paid jobs are submitted once the Hub's prices can be read again."
        )
    all_notes.append("CPU flavors of Jobs are not listed: TRL fine-tuning runs on a GPU.")
    if any(f.is_local and not f.is_gpu for f in gpu_flavors):
        all_notes.append(
            "This machine has no GPU: a local job trains on its CPU, typically 50-100x slower than on a small GPU "
            "(the CPU figures are rough). Fine for a tiny model or a quick test."
        )
    if inp.spec.generates:
        p, c = inp.grpo_lengths
        all_notes.append(
            f"GRPO: {inp.num_generations} completions per prompt, prompts up to {p} and completions up to {c} "
            "tokens (assumed to run to full length), generated with transformers (no vLLM)."
        )
    timeout_s = timeout = None
    if best is not None:
        timeout_s = submit_timeout_s(best.time.total)
        timeout = format_timeout(timeout_s)
    where = tuple(f for f in gpu_flavors if f.is_local == local)
    suggestions = suggestions_for(facts, inp, where) if best is None else ()
    jobs = recommend(tuple(e for e in estimates if not e.flavor.is_local))
    if best is None and local and jobs is not None:  # the GPU flavor that fits first, before any slower variant here
        suggestions = (
            f"Run it on Hugging Face Jobs (backend hf-jobs): fits on {jobs.flavor.name} (peak {jobs.peak_gib:.1f} GB "
            f"per GPU, about {_hours(jobs.hours)}, ${jobs.cost_usd:,.2f}).",
            *suggestions,
        )
    tokens = (best or (estimates[0] if estimates else None)).time.tokens if estimates else 0
    return EstimateResult(
        model=facts.model_id,
        params=facts.params,
        params_source=facts.params_source,
        inputs=inp,
        tokens=tokens,
        flavors=estimates,
        recommended=best.flavor.name if best else None,
        timeout=timeout,
        timeout_s=timeout_s,
        notes=tuple(dict.fromkeys(all_notes)),
        suggestions=suggestions,
        prices_from_hub=prices_from_hub,
        local=local,
        auto=auto,
        hazards=tuple(facts.hazards.items()),
    )
