"""The spending guard: what a job can cost at worst, the cap it must stay under, and the checks that say so.

A job is billed per minute while it runs, and it runs at most until its timeout: its worst case is
`timeout x the flavor's price`. Each submission has a cost cap: the visitor's `max_cost_usd`, else a default
derived from the estimate (the worst case of the default timeout, the estimate + 30%); never above the ceiling
the Space's owner sets (`TRAINER_SPACE_MAX_COST_USD`). A submission is refused, with the numbers, when its
estimate or its worst case is above its cap. With no timeout given, the timeout is bounded so that it fits the cap.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from huggingface_hub import JobInfo

from ..catalog import DEFAULT_TIMEOUT_S
from ..hub.hardware import LOCAL_FLAVOR, Flavor, billed_price, get_flavor
from ..settings import get_settings
from ..validation import format_timeout
from .checks import Check, Status
from .spec import KEY_LABEL

MIN_BILLED_S = 60  # Jobs bill whole minutes


def money(usd: float) -> str:
    return f"${usd:,.2f}"


def cents(usd: float) -> float:
    """Dollars to the cent (the Hub's per-minute prices carry six decimals: no sub-cent noise shown as a cent)."""
    return round(usd + 1e-9, 2)


def worst_case(timeout_s: int, usd_per_hour: float) -> float:
    """What a job can cost at most: its timeout (at least a minute) x the price, to the cent."""
    return cents(max(timeout_s, MIN_BILLED_S) / 3600 * usd_per_hour)


def longest_timeout(cap: float, usd_per_hour: float) -> int:
    """The longest timeout (whole minutes) whose worst case stays under `cap`."""
    if usd_per_hour <= 0:
        return 10**9
    minutes = int(cap / usd_per_hour * 60)
    while worst_case((minutes + 1) * 60, usd_per_hour) <= cap:  # the price's own rounding: a minute more fits
        minutes += 1
    return minutes * 60


@dataclass(frozen=True)
class CostGuard:
    """One submission's money: price, timeout, worst case, estimate, the cap and the Space's ceiling."""

    flavor: str
    usd_per_hour: float
    timeout_s: int
    cap_usd: float
    ceiling_usd: float
    estimate_usd: float | None = None
    cap_given: bool = False  # the visitor set max_cost_usd (else the default derived from the estimate)
    unpriced: str = ""  # why the flavor has no price from the Hub (then nothing paid is submitted on it)
    unfinished_usd: float | None = None  # the worst case of the visitor's unfinished jobs (None: not counted)

    @property
    def worst_usd(self) -> float:
        return worst_case(self.timeout_s, self.usd_per_hour)

    @property
    def max_timeout_s(self) -> int:
        """The longest timeout whose worst case stays under the cap (whole minutes)."""
        return longest_timeout(self.cap_usd, self.usd_per_hour)

    def to_json(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor,
            "usd_per_hour": round(self.usd_per_hour, 4),
            "timeout_s": self.timeout_s,
            "worst_case_usd": self.worst_usd,
            "estimate_usd": None if self.estimate_usd is None else round(self.estimate_usd, 2),
            "cap_usd": self.cap_usd,
            "cap": "yours" if self.cap_given else "default (from the estimate)",
            "ceiling_usd": self.ceiling_usd,
            "price_known": not self.unpriced,
            "unfinished_usd": self.unfinished_usd,
            "total_usd": None if self.unfinished_usd is None else cents(self.unfinished_usd + self.worst_usd),
            "total_cap_usd": get_settings().max_total_cost_usd,
        }

    def summary(self) -> str:
        """One line: the worst case and how it is made ("$2.50 at most: timeout 30m x $5.00/h on h200")."""
        return (
            f"{money(self.worst_usd)} at most: timeout {format_timeout(self.timeout_s)} x "
            f"{money(self.usd_per_hour)}/h on {self.flavor}"
        )


def default_cap(needed_timeout_s: int | None, usd_per_hour: float, ceiling: float) -> float:
    """The worst case of the default timeout (the estimate + 30%, or 2 hours with no estimate), at most `ceiling`."""
    return min(ceiling, max(0.01, worst_case(needed_timeout_s or DEFAULT_TIMEOUT_S, usd_per_hour)))


def bounded_timeout(wanted_s: int, estimate_s: float | None, usd_per_hour: float, cap: float) -> int:
    """The default timeout (`wanted_s`), lowered to fit the cap when the estimate itself still fits under it."""
    if usd_per_hour <= 0:
        return wanted_s
    fits_cap = longest_timeout(cap, usd_per_hour)
    if wanted_s <= fits_cap or fits_cap < max(60, estimate_s or 0):
        return wanted_s  # fits already, or cannot (the cost check then says so with the numbers)
    return fits_cap


def guard(
    flavor_name: str,
    hardware: tuple[tuple[Flavor, ...], bool],
    *,
    timeout_s: int,
    needed_timeout_s: int | None,
    estimate_usd: float | None,
    max_cost_usd: float | None,
) -> CostGuard:
    """The cost guard of a job on `flavor_name` with `timeout_s` (the cap: the visitor's, else the default), priced
    from the Hub's list (`hardware`: the flavors and whether they came from the Hub); a flavor without a price
    from the Hub shows its built-in figure, if any, and carries why it cannot be submitted (`cost_check`)."""
    ceiling = get_settings().max_cost_usd
    flavors, from_hub = hardware
    price, unpriced = (0.0, "") if flavor_name == LOCAL_FLAVOR else billed_price(flavor_name, flavors, from_hub)
    if price is None:
        shown = get_flavor(flavor_name, flavors)
        price = shown.usd_per_hour if shown is not None else 0.0
    cap = max_cost_usd if max_cost_usd is not None else default_cap(needed_timeout_s, price, ceiling)
    return CostGuard(flavor_name, price, timeout_s, cap, ceiling, estimate_usd, max_cost_usd is not None, unpriced)


def cost_check(cost: CostGuard) -> Check:
    """ERROR when the flavor has no price from the Hub, the cap is above the ceiling, or the estimate or the worst
    case is above the cap."""
    if cost.unpriced:
        return Check("cost", Status.ERROR, cost.unpriced)
    if cost.cap_usd > cost.ceiling_usd:
        return Check(
            "cost",
            Status.ERROR,
            f"Your cost cap {money(cost.cap_usd)} is above this Space's ceiling of {money(cost.ceiling_usd)} per job "
            "(set by its owner): lower max_cost_usd.",
        )
    whose = "your cost cap" if cost.cap_given else "the default cost cap (the worst case of the estimate + 30%)"
    if cost.estimate_usd is not None and cost.estimate_usd > cost.cap_usd:
        raise_to = "raise max_cost_usd" if cost.estimate_usd <= cost.ceiling_usd else "make the job smaller"
        return Check(
            "cost",
            Status.ERROR,
            f"The estimate, {money(cost.estimate_usd)} on {cost.flavor}, is above {whose} of {money(cost.cap_usd)}: "
            f"{raise_to} (this Space allows up to {money(cost.ceiling_usd)}), or pick a cheaper flavor.",
        )
    if cost.worst_usd > cost.cap_usd:
        longest = format_timeout(cost.max_timeout_s) if cost.max_timeout_s >= 60 else "under a minute"
        return Check(
            "cost",
            Status.ERROR,
            f"Worst case {cost.summary()}, above {whose} of {money(cost.cap_usd)}. Lower the timeout to at most "
            f"{longest}, or raise max_cost_usd (this Space allows up to {money(cost.ceiling_usd)} per job).",
        )
    estimate = f"; estimate {money(cost.estimate_usd)}" if cost.estimate_usd is not None else ""
    return Check("cost", Status.OK, f"Worst case {cost.summary()}, within {whose} of {money(cost.cap_usd)}{estimate}.")


def running_check(unfinished: int, limit: int, *, confirmed: bool) -> Check:
    """WARN when the visitor already has `limit` unfinished jobs (a real submission not confirmed makes it an error)."""
    if unfinished < limit:
        return Check("running jobs", Status.OK, f"You have {unfinished} unfinished job(s) in this namespace.")
    message = (
        f"You already have {unfinished} unfinished job(s) in this namespace (this Space asks for a confirmation "
        f"from {limit} on)"
    )
    if confirmed:
        return Check("running jobs", Status.WARN, f"{message}; you confirmed starting another.")
    return Check(
        "running jobs",
        Status.WARN,
        f"{message}: confirm to start another (the Submit button asks; the API takes allow_many_running: true), "
        "or cancel some in My jobs.",
    )


# ---------------------------------------------------------------------------------------------- the total cap
HUB_DEFAULT_TIMEOUT_S = 1800  # what the Hub gives a job created without a timeout
TIMEOUT_LABEL = "timeout"  # the app's jobs carry their timeout (seconds) as this label: JobInfo has none
LISTED_WITHIN_S = 60.0  # a job this process created counts on its own until the Hub lists it (or this long)


def is_visitors(job: JobInfo, visitor: str, namespace: str) -> bool:
    """Whether an unfinished job of `namespace` is the visitor's: every job of their own namespace; in an org, the
    jobs whose initiator is them (a job that names no initiator counts too)."""
    if namespace == visitor:
        return True
    name = getattr(job.initiator, "name", None) if job.initiator is not None else None
    return name is None or name == visitor


def unfinished_worst(job: JobInfo, hardware: tuple[tuple[Flavor, ...], bool], *, now: float | None = None) -> float:
    """What an unfinished job can cost at most: its timeout (the app's label) x its flavor's price. A job created
    elsewhere carries no timeout the app can read: it counts as the time it has run so far plus the Hub's default
    timeout (30 min). A flavor without a price from the Hub counts as this Space's per-job ceiling."""
    price, _ = billed_price(job.flavor or "", *hardware)
    if price is None:
        return get_settings().max_cost_usd
    label = (job.labels or {}).get(TIMEOUT_LABEL, "")
    if label.isdigit() and len(label) < 10:
        return worst_case(int(label), price)
    ran = max(0.0, (now or time.time()) - job.started_at.timestamp()) if job.started_at else 0.0
    return worst_case(int(ran) + HUB_DEFAULT_TIMEOUT_S, price)


@dataclass
class _Open:
    """A job this process created (or may have: its answer was lost) that the Hub may not list yet."""

    worst_usd: float
    until: float  # monotonic time after which it no longer counts on its own
    job_id: str | None = None


class OpenCreations:
    """Per visitor and namespace: a lock that serializes the total-cap check with the create, and the jobs created
    here that the Hub's list may not show yet (just created, or a create whose answer was lost, until its deadline)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: weakref.WeakValueDictionary[tuple[str, str], threading.Lock] = weakref.WeakValueDictionary()
        self._open: dict[tuple[str, str], dict[str, _Open]] = {}

    def lock(self, visitor: str, namespace: str) -> threading.Lock:
        """The visitor's lock in `namespace` (kept while someone holds it)."""
        with self._guard:
            lock = self._locks.get((visitor, namespace))
            if lock is None:
                lock = self._locks[(visitor, namespace)] = threading.Lock()
            return lock

    def add(self, visitor: str, namespace: str, key: str, worst_usd: float, *, for_s: float,
            job_id: str | None = None) -> None:  # fmt: skip
        with self._guard:
            self._open.setdefault((visitor, namespace), {})[key] = _Open(worst_usd, time.monotonic() + for_s, job_id)

    def forget(self, visitor: str, namespace: str, key: str) -> None:
        with self._guard:
            self._open.get((visitor, namespace), {}).pop(key, None)

    def clear(self) -> None:
        with self._guard:
            self._open.clear()

    def unlisted(self, visitor: str, namespace: str, seen: set[str]) -> list[float]:
        """The worst cases of the jobs created here that the Hub's list does not show (`seen`: the ids and the
        submission keys of the unfinished jobs it lists)."""
        now = time.monotonic()
        with self._guard:
            entries = self._open.get((visitor, namespace), {})
            for key in [k for k, e in entries.items() if e.until <= now]:
                del entries[key]
            if not entries:
                self._open.pop((visitor, namespace), None)
            return [e.worst_usd for k, e in entries.items() if k not in seen and e.job_id not in seen]


OPEN = OpenCreations()


def open_worst_cases(
    visitor: str, namespace: str, unfinished: Iterable[JobInfo], hardware: tuple[tuple[Flavor, ...], bool]
) -> list[float]:
    """One worst case per unfinished job of the visitor in `namespace`: the Hub's list (`unfinished`), and the jobs
    this process created (or may have) that the list does not show yet."""
    listed = list(unfinished)
    seen = {j.id for j in listed} | {(j.labels or {}).get(KEY_LABEL, "") for j in listed}
    mine = [unfinished_worst(j, hardware) for j in listed if is_visitors(j, visitor, namespace)]
    return mine + OPEN.unlisted(visitor, namespace, seen)


def total_check(worst_usd: float, unfinished: list[float], namespace: str) -> tuple[Check, float]:
    """The worst case of the visitor's unfinished jobs (`unfinished`, one figure each) plus this one (`worst_usd`),
    against this Space's total cap: (the check, the unfinished jobs' total)."""
    cap = get_settings().max_total_cost_usd
    open_usd = cents(sum(unfinished))
    total = cents(open_usd + worst_usd)
    jobs = f"your {len(unfinished)} unfinished job{'s' if len(unfinished) != 1 else ''} in {namespace}"
    if total <= cap:
        return Check(
            "total cost",
            Status.OK,
            f"{jobs[:1].upper()}{jobs[1:]} can cost {money(open_usd)} at most; with this one {money(total)}, within "
            f"this Space's total cap of {money(cap)}.",
        ), open_usd
    room = cents(cap - open_usd)
    smaller = (
        f"or make this job cheaper (a shorter timeout or a cheaper flavor: at most {money(room)} fits)"
        if room >= 0.01
        else "nothing more fits until some of them end"
    )
    return Check(
        "total cost",
        Status.ERROR,
        f"With this job ({money(worst_usd)} at most), {jobs} could cost {money(total)}, above this Space's total "
        f"cap of {money(cap)} ({money(open_usd)} for the unfinished ones). Cancel some in My jobs or wait for them to "
        f"end, {smaller}.",
    ), open_usd
