"""A tiny causal LM built on the spot: random weights and a BPE tokenizer trained here.

Nothing is downloaded. Used by the job-template tests (training, GGUF export) and the
Hub stand-in (served as a model repo). Building takes a few seconds on 2 cores.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What is two plus two? Two plus two is four.",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "user assistant system question answer prompt completion chosen rejected",
    "Write a short poem about the sea. The sea is wide and blue and deep.",
    "Translate hello to French: bonjour. Translate thanks: merci.",
    "0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 + - * / = ( )",
    "<think> reasoning </think> <answer> 42 </answer>",
]


def build_tiny_tokenizer(path: Path, *, chat_template: bool = True, eos_token: str = "<|im_end|>"):
    """Train a byte-level BPE tokenizer (vocab ~ 400) and save it as a transformers tokenizer.

    `eos_token="<|endoftext|>"` makes a base-model tokenizer (Qwen2.5 base): its EOS is not the token that ends a
    chat turn (`<|im_end|>`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_CORPUS * 20, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=eos_token,
        pad_token="<|endoftext|>",
        bos_token=None,
        unk_token=None,
    )
    if chat_template:
        fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(path)
    return fast


def build_tiny_model(
    path: Path | str,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    chat_template: bool = True,
    eos_token: str = "<|im_end|>",
    seed: int = 0,
) -> Path:
    """Write a random-initialised Qwen2 causal LM and its tokenizer to ``path``.

    ``hidden_size`` >= 256 makes K-quants (Q4_K_M) possible in GGUF tests.
    """
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tiny_tokenizer(path, chat_template=chat_template, eos_token=eos_token)
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    (path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny test model\n")
    return path


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    out = build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "/tmp/tiny-model")
    print(json.dumps(sorted(p.name for p in out.iterdir())))
