"""Real-world dataset shapes (a few rows each) and the verdicts expected for every method.

Shared by tests/test_formats.py (pure detection) and tests/test_inspection.py (the same shapes served by the
Hub stand-in's dataset viewer).
"""

from __future__ import annotations

from typing import Any

R, N, X = "READY", "NEEDS_MAPPING", "INCOMPATIBLE"  # X: incompatible


def _msgs(*turns: tuple[str, str], keys: tuple[str, str] = ("role", "content")) -> list[dict[str, str]]:
    return [{keys[0]: role, keys[1]: content} for role, content in turns]


HH = [
    ("What is two plus two?", " Four.", " Five."),
    ("Name the capital of France.", " Paris.", " Berlin."),
    ("Write a poem about the sea.", " The sea is wide and blue.", " No."),
]

SHAPES: dict[str, dict[str, Any]] = {
    "alpaca": {
        "rows": [
            {"instruction": "Add the numbers.", "input": "2 and 2", "output": "4"},
            {"instruction": "Name the capital of France.", "input": "", "output": "Paris"},
            {"instruction": "Translate hello to French.", "input": "", "output": "bonjour"},
        ],
        "expect": {"sft": N, "dpo": X, "grpo": N, "reward": X, "kto": X},
    },
    "sharegpt": {
        "rows": [
            {"conversations": _msgs(("human", "What is 2+2?"), ("gpt", "4"), keys=("from", "value"))},
            {
                "conversations": _msgs(
                    ("system", "Be brief."), ("human", "Hi"), ("gpt", "Hello"), keys=("from", "value")
                )
            },
        ],
        "expect": {"sft": N, "dpo": X, "grpo": X, "reward": X, "kto": X},
    },
    "question_answer": {
        "rows": [
            {"question": "What is 2+2?", "answer": "4"},
            {"question": "What is 3+3?", "answer": "6"},
        ],
        "expect": {"sft": N, "dpo": X, "grpo": N, "reward": X, "kto": X},
    },
    "hh_rlhf_strings": {
        "rows": [
            {"chosen": f"\n\nHuman: {q}\n\nAssistant:{c}", "rejected": f"\n\nHuman: {q}\n\nAssistant:{r}"}
            for q, c, r in HH
        ],
        "expect": {"sft": N, "dpo": R, "grpo": N, "reward": R, "kto": R},
    },
    "hh_rlhf_messages": {
        "rows": [
            {
                "chosen": _msgs(("user", q), ("assistant", c.strip())),
                "rejected": _msgs(("user", q), ("assistant", r.strip())),
            }
            for q, c, r in HH
        ],
        "expect": {"sft": N, "dpo": R, "grpo": N, "reward": R, "kto": R},
    },
    "preference_system": {
        "rows": [
            {"system": "You are helpful.", "question": q, "chosen": c.strip(), "rejected": r.strip()} for q, c, r in HH
        ],
        "expect": {"sft": N, "dpo": N, "grpo": N, "reward": N, "kto": N},
    },
    "prompt_beside_conversations": {  # mlabonne/orpo-dpo-mix-40k: a text prompt (and question) beside whole chats
        "rows": [
            {
                "source": "hh",
                "prompt": q,
                "question": q,
                "chosen": _msgs(("user", q), ("assistant", c.strip())),
                "rejected": _msgs(("user", q), ("assistant", r.strip())),
            }
            for q, c, r in HH
        ],
        "expect": {"sft": N, "dpo": N, "grpo": R, "reward": N, "kto": N},
    },
    "preference_explicit": {
        "rows": [{"prompt": q, "chosen": c, "rejected": r} for q, c, r in HH],
        "expect": {"sft": N, "dpo": R, "grpo": R, "reward": R, "kto": R},
    },
    "kto_bool": {
        "rows": [{"prompt": q, "completion": c, "label": i % 2 == 0} for i, (q, c, _) in enumerate(HH)],
        "expect": {"sft": R, "dpo": X, "grpo": R, "reward": X, "kto": R},
    },
    "kto_int": {
        "rows": [{"prompt": q, "completion": c, "label": i % 2} for i, (q, c, _) in enumerate(HH)],
        "expect": {"sft": R, "dpo": X, "grpo": R, "reward": X, "kto": R},
    },
    "kto_strings": {
        "rows": [{"prompt": q, "completion": c, "label": "good" if i % 2 else "bad"} for i, (q, c, _) in enumerate(HH)],
        "expect": {"sft": R, "dpo": X, "grpo": R, "reward": X, "kto": N},
    },
    "text_only": {
        "rows": [{"text": "The quick brown fox jumps over the lazy dog."}, {"text": "Paris is the capital of France."}],
        "expect": {"sft": R, "dpo": X, "grpo": X, "reward": X, "kto": X},
    },
    "messages": {
        "rows": [
            {"messages": _msgs(("user", "What is 2+2?"), ("assistant", "4"))},
            {"messages": _msgs(("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello"))},
        ],
        "expect": {"sft": R, "dpo": X, "grpo": X, "reward": X, "kto": X},
    },
    "prompt_completion": {
        "rows": [{"prompt": "The sky is", "completion": " blue."}, {"prompt": "The sun is", "completion": " hot."}],
        "expect": {"sft": R, "dpo": X, "grpo": R, "reward": X, "kto": X},
    },
    "prompt_completion_conversational": {
        "rows": [
            {"prompt": _msgs(("user", "What color is the sky?")), "completion": _msgs(("assistant", "Blue."))},
            {"prompt": _msgs(("user", "Where is the sun?")), "completion": _msgs(("assistant", "Up."))},
        ],
        "expect": {"sft": R, "dpo": X, "grpo": R, "reward": X, "kto": X},
    },
    "grpo_prompt_answer": {
        "rows": [{"prompt": "What is 2+2?", "answer": "4"}, {"prompt": "What is 3*3?", "answer": "9"}],
        "expect": {"sft": N, "dpo": X, "grpo": R, "reward": X, "kto": X},
    },
    "grpo_prompt_solution": {
        "rows": [
            {"prompt": _msgs(("user", "What is 2+2?")), "solution": "4"},
            {"prompt": _msgs(("user", "What is 3*3?")), "solution": "9"},
        ],
        "expect": {"sft": N, "dpo": X, "grpo": N, "reward": X, "kto": X},
    },
    "pretokenised": {
        "rows": [
            {"input_ids": [1, 2, 3], "attention_mask": [1, 1, 1]},
            {"input_ids": [4, 5], "attention_mask": [1, 1]},
        ],
        "expect": {"sft": X, "dpo": X, "grpo": X, "reward": X, "kto": X},
    },
    "image_text": {
        "rows": [{"image": {"_type": "Image"}, "text": "A cat."}, {"image": {"_type": "Image"}, "text": "A dog."}],
        "expect": {"sft": R, "dpo": X, "grpo": X, "reward": X, "kto": X},
    },
    "audio_only": {
        "rows": [{"audio": {"_type": "Audio"}}, {"audio": {"_type": "Audio"}}],
        "expect": {"sft": X, "dpo": X, "grpo": X, "reward": X, "kto": X},
    },
}


def viewer_cell(value: Any) -> Any:
    """What the dataset viewer returns for a stand-in media marker (as tests/hub_standin/viewer.py does)."""
    if isinstance(value, dict) and value.get("_type") == "Image":
        return {"src": "https://datasets-server.example/assets/image.jpg", "height": 32, "width": 32}
    if isinstance(value, dict) and value.get("_type") == "Audio":
        return [{"src": "https://datasets-server.example/assets/audio.wav", "type": "audio/wav"}]
    return value


def as_viewer_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: viewer_cell(v) for k, v in r.items()} for r in rows]
