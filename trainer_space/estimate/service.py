"""The estimate as a service: read the model's facts, the dataset's size and the flavors from the Hub (with the
visitor's session), then run the pure model of `estimate/model.py`."""

from __future__ import annotations

from dataclasses import replace

from ..errors import TrainerSpaceError
from ..hub.hardware import Flavor
from ..hub.session import HubSession
from ..hub.viewer import ViewerError
from .model import DEFAULT_MEAN_TOKENS, DEFAULT_ROWS, EstimateInputs, EstimateResult, estimate_from_facts
from .model_facts import get_model_facts


def dataset_num_rows(
    session: HubSession, dataset: str, *, split: str | None = None, config: str | None = None
) -> int | None:
    """Rows of a dataset split from the dataset viewer's /size (None when the viewer cannot tell)."""
    try:
        size = session.viewer.get("size", dataset=dataset).get("size") or {}
    except (ViewerError, TrainerSpaceError, AttributeError):  # the viewer is optional: the caller notes it
        return None
    splits = [s for s in size.get("splits") or [] if not config or s.get("config") == config]
    wanted = split or "train"
    rows = [s.get("num_rows") for s in splits if s.get("split") == wanted]
    if rows and isinstance(rows[0], int):
        return rows[0]
    if split is None:
        total = (size.get("dataset") or {}).get("num_rows")
        return total if isinstance(total, int) and total > 0 else None
    return None


def estimate(
    session: HubSession,
    inputs: EstimateInputs,
    *,
    model: str,
    dataset: str | None = None,
    split: str | None = None,
    num_rows: int | None = None,
    mean_tokens: float | None = None,
    this_machine: Flavor | None = None,
    local: bool = False,
) -> EstimateResult:
    """Peak memory, time and cost of `inputs` for `model` on every GPU flavor, and the flavor to pick.

    Args:
        session: the visitor's session (gated models need their token; anonymous otherwise).
        inputs: the job's settings (validated: see `TrainingConfig.estimate_inputs`).
        model: a validated model id.
        dataset, split: counted by the dataset viewer when `num_rows` is None.
        num_rows, mean_tokens: what is known of the data; None means "count it" / "assume 512 tokens", with a note.
        this_machine: the machine running the app, listed beside the Jobs flavors (Local backend).
        local: recommend this machine rather than a Jobs flavor (a local job).

    Raises:
        RepoNotFound / GatedRepo / HubUnavailable / InvalidInput: the model could not be read.
    """
    notes: list[str] = []
    facts = get_model_facts(session, model)
    if not num_rows:
        rows = dataset_num_rows(session, dataset, split=split) if dataset else None
        if rows is None:
            rows = DEFAULT_ROWS
            why = "the dataset viewer could not count its rows" if dataset else "no dataset or row count was given"
            notes.append(f"Assumed {DEFAULT_ROWS:,} rows ({why}): enter the number of rows for a real estimate.")
        else:
            notes.append(f"{rows:,} rows in {dataset} ({split or 'train'}), from the dataset viewer.")
        num_rows = rows
    if not mean_tokens:
        mean_tokens = min(DEFAULT_MEAN_TOKENS, inputs.max_length)
        notes.append(
            f"Assumed {mean_tokens:.0f} tokens per row on average: inspect the dataset on the Dataset tab "
            "for measured lengths."
        )
    flavors, from_hub = session.hardware()
    if this_machine is not None:
        flavors = (this_machine, *flavors)
    inputs = replace(inputs, num_rows=int(num_rows), mean_tokens=float(mean_tokens))
    return estimate_from_facts(facts, inputs, flavors, prices_from_hub=from_hub, notes=tuple(notes), local=local)
