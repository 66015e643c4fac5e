"""The dataset mapping: how a source dataset's columns become the fields a TRL trainer reads.

This module is the single source of the mapping. It uses the standard library only, because the part between
the SHARED markers below is spliced, as text, into `job_templates/train.py` (the job must stay one
self-contained file): the Space's detector, the job and the `datasets.map` snippet the Dataset tab shows all run
this same code. After editing it, run `python -m trainer_space.data.splice` (a test fails while the job's copy
is stale).

A mapping is `{"columns": {"<field>": "<source column>"}, "transforms": [...]}`: columns are copied to fields
(source columns are kept), then the transforms run in the fixed order of TRANSFORMS, whatever order a mapping
lists them in. `unpair_preference` turns one row into two and runs over whole datasets (`unpair`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# ----- BEGIN SHARED WITH job_templates/train.py (stdlib only; edit here, then `python -m trainer_space.data.splice`)
FIELDS = ("prompt", "completion", "chosen", "rejected", "text", "messages", "label", "answer", "system")
CONVERSATIONAL_FIELDS = ("messages", "prompt", "completion", "chosen", "rejected")
TRANSFORMS = {  # name -> what it does; they always run in this order
    "sharegpt_to_messages": "from/value turns -> role/content (human -> user, gpt -> assistant)",
    "alpaca": 'prompt = instruction + "\\n\\n" + input (when non-empty); completion = output',
    "extract_prompt": "implicit prompt: the common start of chosen and rejected becomes the prompt",
    "prompt_to_messages": "plain-string prompt -> one user message",
    "completion_to_messages": "plain-string completion -> one assistant message",
    "chosen_to_messages": "plain-string chosen -> one assistant message",
    "rejected_to_messages": "plain-string rejected -> one assistant message",
    "system_to_messages": "prepend the system column as a system message (prompt / messages)",
    "label_to_bool": "0/1, good/bad, yes/no, true/false -> bool",
    "unpair_preference": "prompt/chosen/rejected -> prompt/completion/label (two rows per pair)",
}
TRANSFORM_NEEDS = {  # fields (alternatives per group) a transform needs, after the columns are copied
    "sharegpt_to_messages": [("messages", "conversations")],
    "alpaca": [("prompt", "instruction"), ("completion", "output")],
    "extract_prompt": [("chosen",), ("rejected",)],
    "prompt_to_messages": [("prompt",)],
    "completion_to_messages": [("completion",)],
    "chosen_to_messages": [("chosen",)],
    "rejected_to_messages": [("rejected",)],
    "system_to_messages": [("system",), ("prompt", "messages")],
    "label_to_bool": [("label",)],
    "unpair_preference": [("chosen",), ("rejected",)],
}
SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "bot": "assistant", "model": "assistant", "function": "tool"}
TRUE_LABELS = frozenset({"1", "true", "yes", "y", "good", "chosen", "positive", "pos", "desirable", "accept",
                         "accepted"})  # fmt: skip
FALSE_LABELS = frozenset({"0", "false", "no", "n", "bad", "rejected", "negative", "neg", "undesirable", "reject"})
# What each trainer reads, in order of preference (the first group the data has wins)
TRAINER_COLUMNS: dict[str, list[tuple[str, ...]]] = {
    "sft": [("messages",), ("prompt", "completion"), ("text",)],
    "dpo": [("prompt", "chosen", "rejected"), ("chosen", "rejected")],
    "reward": [("prompt", "chosen", "rejected"), ("chosen", "rejected")],
    "grpo": [("prompt", "answer"), ("prompt",)],
    "kto": [("prompt", "completion", "label"), ("prompt", "chosen", "rejected"), ("chosen", "rejected")],
}
DATA_FORMATS = {  # the same, in words (for messages)
    "sft": "'messages', or 'prompt' + 'completion', or 'text'",
    "dpo": "'chosen' + 'rejected' (+ 'prompt', else taken from their common start)",
    "reward": "'chosen' + 'rejected' (+ 'prompt', else taken from their common start)",
    "grpo": "'prompt' (+ 'answer' for the accuracy reward)",
    "kto": "'prompt' + 'completion' + 'label', or preference pairs",
}


@dataclass(frozen=True)
class RewardFunc:
    """A GRPO reward function the job offers: the fields it reads besides the prompt, and what it rewards."""

    needs: tuple[str, ...]
    description: str


REWARD_FUNCS: dict[str, RewardFunc] = {  # the job builds them by these names (train.py: build_reward_funcs)
    "accuracy": RewardFunc(
        ("answer",),
        "TRL's accuracy_reward (math-verify: LaTeX and numbers compared symbolically, \\frac{1}{2} = 0.5) on the "
        "completion's final answer (\\boxed{...}, <answer>...</answer>, the text after '####', else its last number) "
        "and the `answer` field's (a GSM8K solution's '####'): 1.0 when equal, else 0.0; a text answer that is no math "
        "(Paris) matches when the completion's final answer is or ends with it",
    ),
    "think_format": RewardFunc(
        (), "TRL's think_format_reward: 1.0 when the completion is '<think>...</think>' then the answer"
    ),
    "length": RewardFunc(
        (), "1.0 for a completion of max_completion_length // 2 tokens, falling linearly to 0 at 0 and at twice that"
    ),
    "overlong": RewardFunc(
        (),
        "TRL's get_soft_overlong_punishment(max_completion_length, max_completion_length // 4): 0 when short "
        "enough, down to -1 at the limit",
    ),
    "repetition": RewardFunc(
        (), "TRL's get_repetition_penalty_reward(ngram_size=3, max_penalty=-1): 0 with no repeated 3-gram"
    ),
}


class MappingError(ValueError):
    """A mapping that is malformed, or that does not fit the data."""


@dataclass(frozen=True)
class DatasetMapping:
    """Column copies (`field <- source column`) and transforms (in TRANSFORMS order)."""

    columns: dict[str, str] = field(default_factory=dict)
    transforms: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.columns or self.transforms)

    def to_json(self) -> dict[str, Any]:
        return {"columns": dict(self.columns), "transforms": list(self.transforms)}


def parse_mapping(raw: Any) -> DatasetMapping:
    """A DatasetMapping from its JSON text, a dict, another DatasetMapping or None; MappingError if malformed.

    Empty column assignments are dropped; transforms are put in TRANSFORMS order.
    """
    if isinstance(raw, DatasetMapping):
        return raw
    if raw in (None, "", {}):
        return DatasetMapping()
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise MappingError(f"the dataset mapping is not valid JSON ({exc.msg})") from None
    shape = 'a dataset mapping is {"columns": {"<field>": "<source column>"}, "transforms": [...]}'
    if not isinstance(data, dict):
        raise MappingError(shape)
    if set(data) - {"columns", "transforms"}:
        raise MappingError(f"unknown keys {sorted(map(str, set(data) - {'columns', 'transforms'}))}; {shape}")
    columns, transforms = data.get("columns") or {}, data.get("transforms") or []
    if not isinstance(columns, dict) or not all(isinstance(c, (str, type(None))) for c in columns.values()):
        raise MappingError("mapping columns must be field -> source column names (text)")
    if not isinstance(transforms, list) or not all(isinstance(t, str) for t in transforms):
        raise MappingError("mapping transforms must be a list of names")
    columns = {str(f): c for f, c in columns.items() if c not in (None, "")}
    bad_fields = sorted(set(columns) - set(FIELDS))
    bad_transforms = [t for t in transforms if t not in TRANSFORMS]
    if bad_fields or bad_transforms:
        raise MappingError(
            f"unknown mapping fields {bad_fields} or transforms {bad_transforms}; "
            f"fields are {', '.join(FIELDS)}; transforms are {', '.join(TRANSFORMS)}"
        )
    return DatasetMapping(columns=columns, transforms=tuple(t for t in TRANSFORMS if t in transforms))


def mapping_problems(mapping: DatasetMapping, column_names: Iterable[str]) -> list[str]:
    """What does not fit: mapped source columns the data lacks, transforms missing the fields they need."""
    names = list(column_names)
    problems = [f"{fld} <- {src!r}: no such column" for fld, src in mapping.columns.items() if src not in names]
    available = set(names) | set(mapping.columns)
    for name in mapping.transforms:
        problems += [f"{name} needs {' or '.join(g)}" for g in TRANSFORM_NEEDS[name] if not available & set(g)]
    return problems


def normalise_label(value: Any) -> str:
    """A label as text: bools and integral floats as 1/0, then lower-cased text."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(int(value) if isinstance(value, float) and value.is_integer() else value).strip().lower()


def label_to_bool(value: Any) -> bool:
    """Read 0/1, True/False, "good"/"bad", "yes"/"no" ... as a KTO label; MappingError otherwise."""
    if isinstance(value, bool):
        return value
    text = normalise_label(value)
    if text in TRUE_LABELS or text in FALSE_LABELS:
        return text in TRUE_LABELS
    raise MappingError(
        f"label_to_bool: cannot read label {value!r} as true/false (true: {', '.join(sorted(TRUE_LABELS))}; "
        f"false: {', '.join(sorted(FALSE_LABELS))})"
    )


def extract_prompt(chosen: Any, rejected: Any) -> tuple[Any, Any, Any]:
    """(prompt, chosen, rejected): the longest common start of chosen and rejected is the prompt.

    The same rule as `trl.data_utils.extract_prompt`; a space before the answers stays with them.
    """
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if isinstance(chosen, str) and n > 0 and chosen[n - 1] == " ":
        n -= 1
    return chosen[:n], chosen[n:], rejected[n:]


def _chatml(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role") or message.get("from") or "user")
    content = message.get("content") if message.get("content") is not None else message.get("value")
    return {"role": SHAREGPT_ROLES.get(role.lower(), role.lower()), "content": content}


def _sharegpt_to_messages(ex: dict[str, Any]) -> None:
    if "messages" not in ex and "conversations" in ex:
        ex["messages"] = ex["conversations"]
    for key in CONVERSATIONAL_FIELDS:
        if isinstance(ex.get(key), list):
            ex[key] = [_chatml(m) for m in ex[key]]


def _alpaca(ex: dict[str, Any]) -> None:
    instruction = ex["prompt"] if "prompt" in ex else ex["instruction"]
    extra = ex.get("input")
    ex["prompt"] = f"{instruction}\n\n{extra}" if extra and str(extra).strip() else instruction
    ex["completion"] = ex["completion"] if "completion" in ex else ex["output"]


def _extract_prompt(ex: dict[str, Any]) -> None:
    """The implicit prompt of a pair. A text prompt beside whole conversations (ultrafeedback_binarized) repeats
    their first turn: it is replaced by the conversations' common start, so prompt and answers are all messages."""
    prompt = ex.get("prompt")
    if prompt and not (isinstance(prompt, str) and isinstance(ex["chosen"], list)):
        return
    ex["prompt"], ex["chosen"], ex["rejected"] = extract_prompt(ex["chosen"], ex["rejected"])


def _to_messages(key: str, role: str) -> Any:
    def wrap(ex: dict[str, Any]) -> None:
        if isinstance(ex[key], str):
            ex[key] = [{"role": role, "content": ex[key]}]

    return wrap


def _system_to_messages(ex: dict[str, Any]) -> None:
    system = ex.get("system")
    for key in ("messages", "prompt"):
        if key not in ex:
            continue
        turns = [{"role": "user", "content": ex[key]}] if isinstance(ex[key], str) else list(ex[key])
        if system and not (turns and turns[0].get("role") == "system"):
            turns.insert(0, {"role": "system", "content": system})
        ex[key] = turns


def _label_to_bool(ex: dict[str, Any]) -> None:
    ex["label"] = label_to_bool(ex["label"])


ROW_TRANSFORMS = {  # every transform but unpair_preference, which turns one row into two (see `unpair`)
    "sharegpt_to_messages": _sharegpt_to_messages,
    "alpaca": _alpaca,
    "extract_prompt": _extract_prompt,
    "prompt_to_messages": _to_messages("prompt", "user"),
    "completion_to_messages": _to_messages("completion", "assistant"),
    "chosen_to_messages": _to_messages("chosen", "assistant"),
    "rejected_to_messages": _to_messages("rejected", "assistant"),
    "system_to_messages": _system_to_messages,
    "label_to_bool": _label_to_bool,
}


def map_example(example: dict[str, Any], mapping: DatasetMapping) -> dict[str, Any]:
    """One row through the mapping (a new dict): columns copied to fields, then the row transforms in order.

    Raises KeyError / TypeError / MappingError when the row does not fit the mapping.
    """
    out = dict(example)
    out.update({fld: example[src] for fld, src in mapping.columns.items()})
    for name in mapping.transforms:
        if name in ROW_TRANSFORMS:
            ROW_TRANSFORMS[name](out)
    return out


def unpair(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """prompt/chosen/rejected pairs -> prompt/completion/label rows (as `trl.unpair_preference_dataset`)."""
    keep = [c for c in ("prompt", "chosen", "rejected") if rows and c in rows[0]]
    out = []
    for label, key in ((True, "chosen"), (False, "rejected")):
        for r in rows:
            row = {"completion": r[key], "label": label}
            if "prompt" in keep:
                row = {"prompt": r["prompt"], **row}
            out.append(row)
    return out


def map_rows(rows: Sequence[dict[str, Any]], mapping: DatasetMapping) -> list[dict[str, Any]]:
    """All rows through the mapping, `unpair_preference` included."""
    mapped = [map_example(r, mapping) for r in rows]
    return unpair(mapped) if "unpair_preference" in mapping.transforms else mapped


def trainer_columns(method: str, column_names: Iterable[str]) -> tuple[str, ...] | None:
    """The columns the trainer of `method` reads from data with these columns, or None when none fit."""
    names = set(column_names)
    return next((group for group in TRAINER_COLUMNS[method] if names.issuperset(group)), None)


def reward_problems(names: Iterable[str], fields: Iterable[str]) -> list[tuple[str, str]]:
    """(reward, field) for every field a chosen reward reads that the (mapped) data lacks."""
    have = set(fields)
    return [(name, need) for name in names for need in REWARD_FUNCS[name].needs if need not in have]


def default_rewards(fields: Iterable[str]) -> list[str]:
    """GRPO's rewards when none are chosen: `accuracy` when the mapped data has an `answer`, else `length`."""
    return ["accuracy"] if "answer" in set(fields) else ["length"]


def is_conversational(example: dict[str, Any]) -> bool:
    """True when a prompt/completion/messages/chosen/rejected field holds a list of role/content messages."""
    return any(
        isinstance(v, list) and v and isinstance(v[0], dict) and "role" in v[0]
        for k, v in example.items()
        if k in CONVERSATIONAL_FIELDS
    )


# ----- END SHARED WITH job_templates/train.py
