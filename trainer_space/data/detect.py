"""Which TRL methods a dataset can train, and the mapping that would make it fit: READY / NEEDS_MAPPING /
INCOMPATIBLE per method, with a one-line reason.

Pure Python (no torch, no trl: the Space installs neither; importing `trl.data_utils` pulls torch). The rules
follow TRL's documented dataset formats (standard and conversational; language modelling, prompt-completion,
preference with explicit or implicit prompt, unpaired preference, prompt-only) and what TRL 1.16's trainers do
with them (DPO / reward / KTO extract an implicit prompt, KTO unpairs preference pairs).
`tests/test_formats.py` checks that this module agrees with `trl.data_utils` (`is_conversational`,
`is_conversational_from_value`, `maybe_convert_to_chatml`, `extract_prompt`, `unpair_preference_dataset`) on
every fixture shape. A proposed mapping is verified by running it (`data/mapping.py`, the code the job runs)
on the sample rows and judging the result again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ..catalog import METHODS
from ..errors import InvalidInput
from .mapping import (
    DATA_FORMATS,
    FALSE_LABELS,
    TRANSFORMS,
    TRUE_LABELS,
    DatasetMapping,
    MappingError,
    extract_prompt,
    map_rows,
    mapping_problems,
    normalise_label,
    parse_mapping,
    trainer_columns,
)
from .snippet import mapping_code

STANDARD_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
METHOD_FIELDS = {  # the fields the mapping editor offers per method
    "sft": ("messages", "prompt", "completion", "text", "system"),
    "dpo": ("prompt", "chosen", "rejected", "system"),
    "reward": ("prompt", "chosen", "rejected", "system"),
    "grpo": ("prompt", "answer", "system"),
    "kto": ("prompt", "completion", "label", "chosen", "rejected", "system"),
}

# Source column names (normalised: lower case, "-" and " " -> "_") that suggest a field. Exact names only:
# never substrings, so `input_ids` is never a prompt.
SYNONYMS = {
    "messages": ("messages", "conversations", "conversation", "chat", "dialog", "dialogue", "turns"),
    "prompt": ("prompt", "instruction", "question", "query", "problem", "input", "request", "user", "human"),
    "completion": ("completion", "response", "output", "answer", "solution", "reply", "assistant", "gpt", "target"),
    "chosen": ("chosen", "preferred", "winner", "chosen_response", "response_chosen", "better", "accepted"),
    "rejected": ("rejected", "dispreferred", "loser", "rejected_response", "response_rejected", "worse"),
    "label": ("label", "kto_label", "is_good", "desirable", "is_desirable", "thumbs_up", "good", "feedback"),
    "system": ("system", "system_prompt", "system_message", "sys_prompt"),
    "answer": ("answer", "solution", "ground_truth", "final_answer", "reference", "gold", "expected_answer", "target"),
    "text": ("text", "content", "document", "body", "passage", "article", "story", "code", "sentence"),
}


class Verdict(StrEnum):
    READY = "READY"
    NEEDS_MAPPING = "NEEDS_MAPPING"
    INCOMPATIBLE = "INCOMPATIBLE"


@dataclass(frozen=True)
class MethodReport:
    """The verdict for one training method."""

    method: str
    verdict: Verdict
    reason: str
    mapping: DatasetMapping | None = None
    mapping_code: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "mapping": self.mapping.to_json() if self.mapping is not None else None,
            "mapping_code": self.mapping_code,
        }


# ============================================================================ column analysis
class Kind(StrEnum):
    TEXT = "text"
    MESSAGES = "messages"  # list of {"role", "content"}
    SHAREGPT = "sharegpt"  # list of {"from", "value"}
    TOKENS = "tokens"  # list of ints (input_ids, attention_mask)
    LIST = "list"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    MEDIA = "media"  # image / audio / video
    DICT = "dict"
    MIXED = "mixed"
    EMPTY = "empty"  # no value in the sample


MEDIA_TYPES = {"Image", "Audio", "Video", "Pdf"}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    roles: frozenset[str] = frozenset()  # roles (or ShareGPT "from" values) seen in message lists
    labels: frozenset[str] = frozenset()  # normalised distinct scalar values (at most 50)
    filled: int = 0  # rows with a non-empty value

    @property
    def conversational(self) -> bool:
        return self.kind in (Kind.MESSAGES, Kind.SHAREGPT)

    @property
    def standard_roles(self) -> bool:
        return self.kind == Kind.MESSAGES and self.roles <= STANDARD_ROLES

    @property
    def labels_readable(self) -> bool:
        return bool(self.labels) and self.labels <= (TRUE_LABELS | FALSE_LABELS)


def value_kind(value: Any) -> Kind | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return Kind.BOOL
    if isinstance(value, int):
        return Kind.INT
    if isinstance(value, float):
        return Kind.FLOAT
    if isinstance(value, str):
        return Kind.TEXT
    if isinstance(value, dict):
        media = {"src"} <= value.keys() or {"bytes", "path"} <= value.keys() or "sampling_rate" in value
        return Kind.MEDIA if media else Kind.DICT
    if isinstance(value, list):
        if not value:
            return None  # an empty list fits any list kind
        if all(isinstance(v, dict) for v in value):
            if all("role" in v for v in value):
                return Kind.MESSAGES
            if all("from" in v and "value" in v for v in value):
                return Kind.SHAREGPT
            if all("src" in v for v in value):
                return Kind.MEDIA
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return Kind.TOKENS
        return Kind.LIST
    name = type(value).__name__
    return Kind.MEDIA if any(w in name for w in ("Image", "Audio", "Video", "Decoder")) else Kind.DICT


def _feature_is_media(feature: Any) -> bool:
    if isinstance(feature, dict):
        return feature.get("_type") in MEDIA_TYPES
    if isinstance(feature, list) and feature:
        return _feature_is_media(feature[0])
    return False


def _column(name: str, values: list[Any], feature: Any = None) -> Column:
    kinds = {k for k in map(value_kind, values) if k is not None}
    if _feature_is_media(feature) or Kind.MEDIA in kinds:
        kind = Kind.MEDIA
    elif not kinds:
        kind = Kind.EMPTY
    elif len(kinds) == 1:
        kind = kinds.pop()
    elif kinds == {Kind.INT, Kind.FLOAT}:
        kind = Kind.FLOAT
    else:
        kind = Kind.MIXED
    roles: set[str] = set()
    if kind in (Kind.MESSAGES, Kind.SHAREGPT):
        key = "role" if kind == Kind.MESSAGES else "from"
        roles = {str(m.get(key)) for v in values if isinstance(v, list) for m in v if isinstance(m, dict)}
    labels: set[str] = set()
    if kind in (Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.TEXT):
        for v in values:
            if v is not None and len(labels) < 51:
                labels.add(normalise_label(v)[:40])
    filled = sum(1 for v in values if v not in (None, "", []))
    return Column(name, kind, frozenset(roles), frozenset(labels) if len(labels) <= 50 else frozenset(), filled)


def analyze(rows: Sequence[dict[str, Any]], features: dict[str, Any] | None = None) -> dict[str, Column]:
    """Kind of every column, from the sample rows (and the viewer's feature types, for media)."""
    names: list[str] = list(features or {})
    for row in rows:
        names.extend(k for k in row if k not in names)
    return {n: _column(n, [r.get(n) for r in rows], (features or {}).get(n)) for n in names}


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


# ============================================================================ mapping
def normalize_mapping(raw: Any) -> DatasetMapping:
    """A DatasetMapping from a dict, JSON text or None (InvalidInput when malformed or unknown names)."""
    try:
        return parse_mapping(raw)
    except MappingError as err:
        raise InvalidInput(f"The dataset mapping is not valid: {err}.") from None


# ============================================================================ readiness on TRL field names
def _family(col: Column) -> str | None:
    if col.kind == Kind.TEXT:
        return "standard"
    if col.kind == Kind.MESSAGES:
        return "conversational"
    return None


def _bad_column(col: Column) -> str | None:
    """Why a text/messages field cannot be used as is, or None."""
    if col.kind == Kind.SHAREGPT:
        return f"'{col.name}' holds from/value turns (needs role/content)"
    if col.kind == Kind.MESSAGES and not col.standard_roles:
        odd = ", ".join(sorted(col.roles - STANDARD_ROLES))
        return f"'{col.name}' has roles {odd} (chat templates expect user/assistant/system)"
    if _family(col) is None:
        return f"'{col.name}' holds {col.kind.value} values, not text or messages"
    return None


def _same_family(cols: list[Column]) -> str | None:
    """An error when the fields mix plain strings and message lists, else None."""
    families = {_family(c) for c in cols}
    if len(families) > 1:
        parts = ", ".join(f"'{c.name}' is {_family(c)}" for c in cols)
        return f"fields mix plain text and messages ({parts})"
    return None


def _all_empty(cols: list[Column]) -> str | None:
    empty = next((c.name for c in cols if c.filled == 0), None)
    return f"'{empty}' is empty in every sample row" if empty else None


def _bool_like(col: Column) -> bool:
    """Booleans, or numbers that are all 0/1 (TRL's KTOTrainer reads labels with `torch.as_tensor(dtype=bool)`)."""
    return col.kind == Kind.BOOL or (
        col.kind in (Kind.INT, Kind.FLOAT) and bool(col.labels) and col.labels <= {"0", "1"}
    )


def _implicit_prompt_ok(rows: Sequence[dict[str, Any]]) -> bool:
    try:
        return all(extract_prompt(r["chosen"], r["rejected"])[0] for r in rows)
    except TypeError:
        return False


def readiness(method: str, rows: Sequence[dict[str, Any]]) -> tuple[bool, str]:
    """(ready, reason) for rows already in TRL's field names (after any mapping)."""
    if not rows:
        return False, "no rows"
    names = {k for r in rows for k in r}
    group = trainer_columns(method, names)
    if group is None:
        return False, f"{METHODS[method].title} needs {DATA_FORMATS[method]}"
    cols = analyze([{k: r.get(k) for k in group} for r in rows])
    text_fields = [cols[f] for f in group if f not in ("label", "answer")]
    problem = next(filter(None, map(_bad_column, text_fields)), None) or _same_family(text_fields)
    problem = problem or _all_empty(text_fields)
    if problem:
        return False, problem
    family = _family(text_fields[0])
    if "label" in group and not _bool_like(cols["label"]):
        return False, f"'label' holds {cols['label'].kind.value} values; KTO needs true/false (or 0/1)"
    if group == ("chosen", "rejected") and not _implicit_prompt_ok(rows):
        return False, "'chosen' and 'rejected' share no common start, so there is no prompt to extract"
    return True, _ready_reason(method, group, family)


def _ready_reason(method: str, group: tuple[str, ...], family: str | None) -> str:
    if group == ("messages",):
        return "conversational language modelling ('messages')"
    if group == ("text",):
        return "standard language modelling ('text')"
    if group == ("prompt", "completion"):
        return f"prompt-completion ({family})"
    if group == ("prompt", "completion", "label"):
        return f"unpaired preference ({family}: prompt, completion, label)"
    pair = "; KTO turns each pair into a desirable and an undesirable example" if method == "kto" else ""
    if group == ("prompt", "chosen", "rejected"):
        return f"preference with explicit prompt ({family}){pair}"
    if group == ("chosen", "rejected"):
        return f"preference with implicit prompt ({family}): the common start becomes the prompt{pair}"
    if group == ("prompt", "answer"):
        return f"prompt-only ({family}) with 'answer' for the accuracy reward"
    return f"prompt-only ({family}); no 'answer' field, so no accuracy reward"


# ============================================================================ proposals
@dataclass
class _Candidates:
    """Source columns that look like each field."""

    cols: dict[str, Column]

    def find(self, fld: str, kinds: Iterable[Kind], exclude: Iterable[str] = ()) -> Column | None:
        kinds, exclude = set(kinds), set(exclude)
        by_norm = {_norm(c.name): c for c in self.cols.values() if c.kind in kinds and c.name not in exclude}
        for synonym in SYNONYMS[fld]:
            if synonym in by_norm and by_norm[synonym].filled:
                return by_norm[synonym]
        return None

    def text_like(self, fld: str, exclude: Iterable[str] = ()) -> Column | None:
        return self.find(fld, (Kind.TEXT, Kind.MESSAGES, Kind.SHAREGPT), exclude)

    def messages(self) -> Column | None:
        found = self.find("messages", (Kind.MESSAGES, Kind.SHAREGPT))
        if found is None:  # any other column of chat turns
            found = next((c for c in self.cols.values() if c.conversational and c.filled and not self.named(c)), None)
        return found

    def named(self, col: Column) -> bool:
        """True when the column's name says it is a prompt, completion, chosen or rejected field."""
        return any(_norm(col.name) in SYNONYMS[f] for f in ("prompt", "completion", "chosen", "rejected"))

    def system(self) -> Column | None:
        return self.find("system", (Kind.TEXT,))

    def alpaca(self) -> tuple[Column, Column] | None:
        instruction = self.cols.get("instruction")
        output = self.find("completion", (Kind.TEXT,), exclude=("instruction", "input"))
        has_input = "input" in self.cols and self.cols["input"].kind in (Kind.TEXT, Kind.EMPTY)
        if instruction and instruction.kind == Kind.TEXT and output and has_input:
            return instruction, output
        return None

    def pair(self) -> tuple[Column, Column] | None:
        chosen = self.text_like("chosen")
        rejected = self.text_like("rejected", exclude=[chosen.name] if chosen else [])
        return (chosen, rejected) if chosen and rejected else None

    def prompt(self, exclude: Iterable[str] = ()) -> Column | None:
        return self.text_like("prompt", exclude)

    def completion(self, exclude: Iterable[str] = ()) -> Column | None:
        return self.text_like("completion", exclude)

    def text(self) -> Column | None:
        found = self.find("text", (Kind.TEXT,))
        if found is None:
            texts = [c for c in self.cols.values() if c.kind == Kind.TEXT and c.filled]
            found = texts[0] if len(texts) == 1 else None
        return found

    def label(self, exclude: Iterable[str] = ()) -> Column | None:
        return self.find("label", (Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.TEXT), exclude)

    def answer(self, exclude: Iterable[str] = ()) -> Column | None:
        return self.find("answer", (Kind.TEXT, Kind.INT, Kind.FLOAT), exclude)


@dataclass
class _Plan:
    """A mapping being built: field assignments and transforms."""

    columns: dict[str, str]
    transforms: set[str]
    note: str = ""

    def mapping(self) -> DatasetMapping:
        return DatasetMapping(
            columns=dict(self.columns), transforms=tuple(t for t in TRANSFORMS if t in self.transforms)
        )


def _conversational_plan(plan: _Plan, cols: dict[str, Column], fields: Sequence[str]) -> None:
    """Make the given fields conversational (wrapping strings, converting from/value) so they agree."""
    for fld in fields:
        col = cols.get(plan.columns.get(fld, ""))
        if col is None:
            continue
        if col.kind == Kind.TEXT:
            plan.transforms.add(f"{fld}_to_messages")
        elif col.kind == Kind.SHAREGPT or (col.kind == Kind.MESSAGES and not col.standard_roles):
            plan.transforms.add("sharegpt_to_messages")


def _harmonise(plan: _Plan, cols: dict[str, Column], fields: Sequence[str], system: Column | None) -> None:
    """Convert from/value turns; when strings and messages are mixed, or a system column joins, use messages."""
    present = [cols[plan.columns[f]] for f in fields if f in plan.columns]
    needs_chat = system is not None or {c.kind == Kind.TEXT for c in present} == {True, False}
    if needs_chat:
        _conversational_plan(plan, cols, fields)
    else:
        _conversational_plan(
            plan, cols, [f for f in fields if f in plan.columns and cols[plan.columns[f]].kind != Kind.TEXT]
        )
    if system is not None:
        plan.columns["system"] = system.name
        plan.transforms.add("system_to_messages")


def _plan_prompt_completion(c: _Candidates, system: Column | None) -> _Plan | None:
    found = c.alpaca()
    if found:
        plan = _Plan({"prompt": found[0].name, "completion": found[1].name}, {"alpaca"}, "alpaca: instruction + input")
        if system is not None:
            plan.transforms |= {"prompt_to_messages", "completion_to_messages", "system_to_messages"}
            plan.columns["system"] = system.name
        return plan
    prompt = c.prompt()
    completion = c.completion(exclude=[prompt.name] if prompt else [])
    if not (prompt and completion):
        return None
    plan = _Plan({"prompt": prompt.name, "completion": completion.name}, set())
    _harmonise(plan, c.cols, ("prompt", "completion"), system)
    return plan


def _prompt_in_conversation(rows: Sequence[dict[str, Any]], prompt: str, chosen: str) -> bool:
    """True when chosen conversations already start with the prompt (the prompt column is redundant)."""
    for r in rows:
        turns = r.get(chosen)
        if not isinstance(turns, list) or not turns or not isinstance(turns[0], dict):
            return False
        first = turns[0].get("content", turns[0].get("value"))
        if str(first).strip() != str(r.get(prompt)).strip():
            return False
    return bool(rows)


def _plan_preference(c: _Candidates, rows: Sequence[dict[str, Any]], system: Column | None) -> _Plan | None:
    pair = c.pair()
    if pair is None:
        return None
    chosen, rejected = pair
    plan = _Plan({"chosen": chosen.name, "rejected": rejected.name}, set())
    prompt = c.prompt(exclude=[chosen.name, rejected.name])
    redundant = prompt is not None and chosen.conversational and prompt.kind == Kind.TEXT
    if redundant and _prompt_in_conversation(rows, prompt.name, chosen.name):
        if prompt.name == "prompt":  # the job keeps source columns: extract_prompt replaces the text prompt
            plan.transforms.add("extract_prompt")
            plan.note = "the conversations already hold the prompt: it is taken from them"
        prompt = None  # the conversations hold the prompt: use them as implicit-prompt pairs
    if prompt is not None:
        plan.columns["prompt"] = prompt.name
        _harmonise(plan, c.cols, ("prompt", "chosen", "rejected"), system)
    else:
        if system is not None:
            plan.transforms.add("extract_prompt")
        _harmonise(plan, c.cols, ("chosen", "rejected"), system)
        if system is not None and chosen.kind == Kind.TEXT:
            plan.transforms.add("prompt_to_messages")
    return plan


def _plan_sft(c: _Candidates, rows: Sequence[dict[str, Any]], system: Column | None) -> _Plan | None:
    messages = c.messages()
    if messages is not None:
        plan = _Plan({"messages": messages.name}, set())
        _conversational_plan(plan, c.cols, ["messages"])
        if system is not None:
            plan.columns["system"] = system.name
            plan.transforms.add("system_to_messages")
        return plan
    plan = _plan_prompt_completion(c, system)
    if plan is not None:
        return plan
    pair = c.pair()
    if pair is not None:  # preference data: train on the chosen answers
        chosen = pair[0]
        prompt = c.prompt(exclude=[p.name for p in pair])
        if (
            prompt is not None
            and chosen.conversational
            and prompt.kind == Kind.TEXT
            and _prompt_in_conversation(rows, prompt.name, chosen.name)
        ):
            prompt = None  # whole chosen conversations already open with it: a prompt beside them repeats the turn
        if prompt is not None:
            plan = _Plan({"prompt": prompt.name, "completion": chosen.name}, set(), "trains on the chosen answers")
            _harmonise(plan, c.cols, ("prompt", "completion"), system)
            return plan
        fld = "text" if chosen.kind == Kind.TEXT else "messages"
        plan = _Plan({fld: chosen.name}, set(), "trains on the chosen answers")
        _conversational_plan(plan, c.cols, [fld] if fld == "messages" else [])
        return plan
    text = c.text()
    return _Plan({"text": text.name}, set()) if text is not None else None


def _plan_grpo(c: _Candidates, rows: Sequence[dict[str, Any]], system: Column | None) -> _Plan | None:
    found = c.alpaca()
    if found:
        plan = _Plan({"prompt": found[0].name, "completion": found[1].name}, {"alpaca"})
    else:
        prompt = c.prompt()
        if prompt is None:
            pair = c.pair()
            if pair is None:
                return None
            plan = _Plan({"chosen": pair[0].name, "rejected": pair[1].name}, {"extract_prompt"})
            _conversational_plan(
                plan, c.cols, [f for f in ("chosen", "rejected") if c.cols[plan.columns[f]].conversational]
            )
            return plan
        plan = _Plan({"prompt": prompt.name}, set())
        _conversational_plan(plan, c.cols, [] if prompt.kind == Kind.TEXT else ["prompt"])
        answer = c.answer(exclude=[prompt.name])
        if answer is not None:
            plan.columns["answer"] = answer.name
    if system is not None:
        plan.columns["system"] = system.name
        plan.transforms |= {"prompt_to_messages", "system_to_messages"}
    return plan


def _plan_kto(c: _Candidates, rows: Sequence[dict[str, Any]], system: Column | None) -> _Plan | None:
    label = c.label()
    exclude = [label.name] if label else []
    prompt = c.prompt(exclude=exclude)
    completion = c.completion(exclude=[*exclude, prompt.name] if prompt else exclude)
    if label is not None and prompt is not None and completion is not None:
        if not _bool_like(label) and not label.labels_readable:
            values = ", ".join(sorted(label.labels)[:5])
            return _Plan({}, set(), f"blocked: label column '{label.name}' holds {values}, not desirable/undesirable")
        plan = _Plan({"prompt": prompt.name, "completion": completion.name, "label": label.name}, set())
        if not _bool_like(label):
            plan.transforms.add("label_to_bool")
        _harmonise(plan, c.cols, ("prompt", "completion"), system)
        return plan
    return _plan_preference(c, rows, system)


_PLANNERS = {
    "sft": _plan_sft,
    "dpo": _plan_preference,
    "reward": _plan_preference,
    "grpo": _plan_grpo,
    "kto": _plan_kto,
}


# ============================================================================ detection
def _incompatible_reason(method: str, cols: dict[str, Column], c: _Candidates) -> str:
    names = [n for n, col in cols.items() if col.kind != Kind.MEDIA]
    media = [n for n, col in cols.items() if col.kind == Kind.MEDIA]
    if names and all(cols[n].kind == Kind.TOKENS for n in names):
        return "pre-tokenised ids only (input_ids...): no text to build from; use the source text dataset"
    if not names and media:
        return f"only image/audio columns ({', '.join(media)}): this Space trains text-only models"
    label = c.label()
    if method in ("dpo", "reward"):
        if label is not None and c.prompt() and c.completion():
            return "one completion per row with a label (unpaired): DPO and reward need chosen + rejected; use KTO"
        return f"needs preference pairs: {DATA_FORMATS[method]}; no chosen/rejected-like columns"
    if method == "kto":
        return "needs a desirable/undesirable label per completion, or preference pairs (chosen + rejected)"
    if method == "grpo":
        if c.messages() is not None:
            return "full conversations; GRPO needs prompts alone (a 'prompt' or question column)"
        return "needs a prompt column (prompt / question / instruction)"
    return f"needs {DATA_FORMATS[method]}; no matching columns"


def _sample(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if isinstance(r, dict)]


def _unused_note(cols: dict[str, Column], used: Iterable[str]) -> str:
    used = set(used)
    media = [n for n, col in cols.items() if col.kind == Kind.MEDIA and n not in used]
    return f"; not used: {', '.join(repr(m) for m in media)} (image/audio)" if media else ""


def _verify(method: str, rows: list[dict[str, Any]], mapping: DatasetMapping) -> tuple[bool, str]:
    """Run the mapping on the rows and re-check readiness."""
    problems = mapping_problems(mapping, {k for r in rows for k in r})
    if problems:
        return False, "; ".join(problems)
    try:
        mapped = map_rows(rows, mapping)
    except (KeyError, ValueError, TypeError, AttributeError) as err:
        return False, f"the mapping fails on the sample rows ({type(err).__name__}: {err})"
    return readiness(method, mapped)


def _improvement(method: str, cols: dict[str, Column], c: _Candidates, group: tuple[str, ...]) -> _Plan | None:
    """A mapping that makes a READY dataset better: a system column TRL would drop, an answer for GRPO."""
    system = c.system()
    answer = c.answer(exclude=group) if method == "grpo" and "answer" not in group else None
    if system is None and answer is None:
        return None
    if system is not None and group in (("text",),):
        return None
    plan = _Plan({f: f for f in group}, set())
    if answer is not None:
        plan.columns["answer"] = answer.name
        plan.note = f"maps '{answer.name}' to 'answer' for the accuracy reward"
    if system is not None:
        if group == ("chosen", "rejected"):
            plan.transforms.add("extract_prompt")
            plan.transforms.add("prompt_to_messages")
        _harmonise(plan, cols, [f for f in group if f not in ("label", "answer")], system)
        plan.note = f"adds '{system.name}' as a system message (TRL would ignore it)"
    return plan


def detect_method(
    method: str,
    rows: Sequence[dict[str, Any]],
    *,
    features: dict[str, Any] | None = None,
    dataset: str | None = None,
    config: str | None = None,
    split: str = "train",
) -> MethodReport:
    """READY / NEEDS_MAPPING / INCOMPATIBLE for one method, with a one-line reason and, if needed, a mapping."""
    rows = _sample(rows)
    if not rows:
        return MethodReport(method, Verdict.INCOMPATIBLE, "the split has no rows")
    cols = analyze(rows, features)
    c = _Candidates(cols)
    code = _code_maker(method, dataset, config, split)
    ready, reason = readiness(method, rows)
    if ready:
        group = trainer_columns(method, cols) or ()
        plan = _improvement(method, cols, c, group)
        if plan is not None and _verify(method, rows, plan.mapping())[0]:
            mapping = plan.mapping()
            after = _verify(method, rows, mapping)[1]
            return MethodReport(
                method, Verdict.NEEDS_MAPPING, _mapping_reason(mapping, after, plan.note), mapping, code(mapping)
            )
        return MethodReport(method, Verdict.READY, reason + _unused_note(cols, group))
    plan = _PLANNERS[method](c, rows, c.system())
    if plan is None:
        return MethodReport(method, Verdict.INCOMPATIBLE, _incompatible_reason(method, cols, c))
    if plan.note.startswith("blocked: "):
        return MethodReport(method, Verdict.INCOMPATIBLE, _blocked_reason(plan.note))
    mapping = plan.mapping()
    ok, after = _verify(method, rows, mapping)
    if not ok:
        return MethodReport(method, Verdict.INCOMPATIBLE, f"{reason}; no automatic mapping fits ({after})")
    return MethodReport(
        method, Verdict.NEEDS_MAPPING, _mapping_reason(mapping, after, plan.note), mapping, code(mapping)
    )


def _blocked_reason(note: str) -> str:
    note = note.removeprefix("blocked: ")
    if note.startswith("prompt column repeats"):
        return (
            "'prompt' is text while 'chosen'/'rejected' are whole conversations that already start with it; "
            "the job's mapping cannot drop a 'prompt' column"
        )
    return note


def _mapping_reason(mapping: DatasetMapping, after: str, note: str) -> str:
    """One line: what the mapping does, then what the data is afterwards."""
    steps = [f"{src} -> {fld}" for fld, src in mapping.columns.items() if src != fld] + list(mapping.transforms)
    head = f"map {', '.join(steps)}" if steps else "select the columns"
    return f"{head} ({note}): {after}" if note else f"{head}: {after}"


def _code_maker(method: str, dataset: str | None, config: str | None, split: str):
    def make(mapping: DatasetMapping) -> str:
        return mapping_code(mapping, method=method, dataset=dataset, config=config, split=split)

    return make


def detect(
    rows: Sequence[dict[str, Any]],
    *,
    features: dict[str, Any] | None = None,
    dataset: str | None = None,
    config: str | None = None,
    split: str = "train",
) -> dict[str, MethodReport]:
    """Verdicts for all five methods (sft, dpo, grpo, reward, kto)."""
    kwargs = {"features": features, "dataset": dataset, "config": config, "split": split}
    return {m: detect_method(m, rows, **kwargs) for m in METHODS}


def check_mapping(
    method: str,
    rows: Sequence[dict[str, Any]],
    mapping: DatasetMapping | dict | None,
    *,
    dataset: str | None = None,
    config: str | None = None,
    split: str = "train",
) -> MethodReport:
    """Re-validate a mapping the visitor edited: apply it to the rows and run the detector again."""
    m = normalize_mapping(mapping)
    rows = _sample(rows)
    if not m:
        return detect_method(method, rows, dataset=dataset, config=config, split=split)
    if not rows:
        return MethodReport(method, Verdict.INCOMPATIBLE, "the split has no rows", m)
    ok, reason = _verify(method, rows, m)
    code = mapping_code(m, method=method, dataset=dataset, config=config, split=split)
    if ok:
        return MethodReport(method, Verdict.READY, f"with this mapping: {reason}", m, code)
    return MethodReport(method, Verdict.INCOMPATIBLE, f"with this mapping: {reason}", m, code)


def example_for_display(row: dict[str, Any]) -> dict[str, Any]:
    """The conversation (or text) a mapped row trains on, for rendering with a chat template."""
    if isinstance(row.get("messages"), list):
        return {"messages": row["messages"]}
    prompt = row.get("prompt")
    second = next((row[k] for k in ("completion", "chosen") if k in row), None)
    if isinstance(prompt, list) and (second is None or isinstance(second, list)):
        return {"messages": list(prompt) + list(second or []), "generation_prompt": second is None}
    if isinstance(row.get("chosen"), list) and prompt is None:
        return {"messages": row["chosen"]}
    if isinstance(row.get("text"), str):
        return {"text": row["text"]}
    parts = [str(p) for p in (prompt, second) if p is not None]
    return {"text": "".join(parts)} if parts else {}


def mapped_fields(rows: Sequence[dict[str, Any]], mapping: DatasetMapping | dict | None) -> set[str]:
    """The fields the (sample) rows have once the mapping ran: what the job's trainer and rewards can read."""
    rows = _sample(rows)
    m = normalize_mapping(mapping)
    try:
        mapped = map_rows(rows, m) if m else list(rows)
    except (KeyError, ValueError, TypeError, AttributeError):  # a mapping that does not fit: its columns at least
        mapped = [{**r, **dict.fromkeys(m.columns)} for r in rows]
    return {k for r in mapped for k in r}


def suggest_column(fld: str, rows: Sequence[dict[str, Any]], exclude: Iterable[str] = ()) -> str | None:
    """A source column that looks like `fld` (by name and kind, as the proposals pick them), or None."""
    c = _Candidates(analyze(_sample(rows)))
    found = c.answer(exclude) if fld == "answer" else c.find(fld, (Kind.TEXT, Kind.MESSAGES), exclude)
    return found.name if found is not None else None


# ============================================================================ mapping editor helpers
def editor_mapping(report: MethodReport, column_names: Iterable[str]) -> DatasetMapping:
    """What the mapping editor starts from: the proposed mapping, else the columns the trainer would read."""
    if report.mapping is not None:
        return report.mapping
    group = trainer_columns(report.method, column_names) if report.verdict == Verdict.READY else None
    return DatasetMapping(columns={f: f for f in group or ()})
