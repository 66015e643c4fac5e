"""Exactly-once job submission: every job carries a key (a label); a failure after the request left is settled by
looking the key up before answering, so the visitor reads the truth and a retry never makes a second job.

The key:

* given by the API caller (`idempotency_key`): hashed with the visitor's name, so two people's keys never meet
  in an org namespace. A job with that key, whatever its stage, is returned instead of a new one.
* otherwise derived from the visitor, the namespace, the kind of job and the resolved config (without its
  submission fields: cap, confirmations): the same job asked for twice is the same key. Such a job is returned
  while it is unfinished, or when it completed and was created less than `REUSE_WINDOW_S` ago (a retry after a
  lost answer, a double click). A job that was canceled or failed is not: submitting it again is a new decision;
  so is the same config after the window.

Outcomes: `created`; `existing` (found before sending: nothing new was created); `recovered` (the Hub's answer was
lost, the job exists: here it is). Otherwise `JobNotCreated` (the Hub refused, or answered an error and was checked
and has no such job) or `JobOutcomeUnknown` (it could not be checked, or the create's answer never came).
Same-key submissions in this process are serialized by a lock, so two clicks cannot both pass the lookup; the key is
compared here, whatever the Hub's label filter answered.

A create whose answer never came (a timeout, a dropped connection, a 504) may still be applied by the Hub later. It
is never called "not created" before its deadline (`TRAINER_SPACE_CREATE_DEADLINE_S` after it was sent): until then
a retry of the same key gets the job once the Hub lists it, or is refused (nothing sent); after it, a Hub that still
lists no job with the key means it was not created, and the retry creates it.

The total cap (`spending.total_check`): with a paid job's worst case given, the check of the visitor's unfinished
jobs in the namespace and the create are serialized per visitor and namespace, and the jobs created here that the
Hub does not list yet (just created, or whose answer was lost, until their deadline) count too.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from huggingface_hub import JobInfo

from ..errors import HubUnavailable, JobNotCreated, JobOutcomeUnknown, RateLimited, TrainerSpaceError
from ..hub.session import TERMINAL_STAGES, HubSession, JobRequest
from ..settings import get_settings
from ..steps import step
from .backends import LOCAL, JobLaunch, job_backend
from .backends.hf_jobs import job_request
from .checks import Status
from .preflight import PreflightFailed
from .spec import KEY_LABEL
from .spending import LISTED_WITHIN_S, OPEN, open_worst_cases, total_check

REUSE_WINDOW_S = 600  # a derived key returns a job created this recently even when it has ended
CLOCK_SKEW_S = 120  # the Hub's clock against ours, when telling a job created by this submission
LOOKUP_PAUSES_S = (0.0, 1.0, 2.0)  # a job just created may take a moment to be listed

_LOCKS: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class _Pending:
    """A create of this key whose answer never came: the Hub may still apply it until `until` (monotonic)."""

    sent_at: float  # wall clock
    until: float
    deadline: str  # `until` as the visitor reads it (UTC)


_PENDING: dict[str, _Pending] = {}  # by key (each key's own lock orders its reads and writes)
_PENDING_GUARD = threading.Lock()  # the dict itself, shared by every key


def derived_key(visitor: str, namespace: str, kind: str, job: dict[str, Any]) -> str:
    """The key of a job when the caller gave none: the same visitor, place, kind and config give the same key."""
    text = json.dumps({"v": 1, "visitor": visitor, "ns": namespace, "kind": kind, "job": job}, sort_keys=True)
    return "d" + hashlib.sha256(text.encode()).hexdigest()[:31]


def caller_key(visitor: str, key: str) -> str:
    """The label value for a key the caller chose (scoped to the visitor)."""
    return "k" + hashlib.sha256(f"{visitor}\n{key}".encode()).hexdigest()[:31]


def submission_key(visitor: str, namespace: str, kind: str, job: dict[str, Any], given: str | None) -> str:
    return caller_key(visitor, given) if given else derived_key(visitor, namespace, kind, job)


@dataclass(frozen=True)
class Submitted:
    """A job and how this submission got it."""

    job: JobInfo
    outcome: str  # created / existing / recovered
    key: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "key": self.key, "label": f"{KEY_LABEL}={self.key}", "note": self.note}


def _lock(key: str) -> threading.Lock:
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = threading.Lock()
            _LOCKS[key] = lock
        return lock


def _created_ts(job: JobInfo) -> float:
    return job.created_at.timestamp() if job.created_at else 0.0


def _reusable(job: JobInfo, *, after: float, any_stage: bool) -> bool:
    """Whether a job with the submission's key answers this submission (see the module's docstring)."""
    stage = job.status.stage
    if any_stage or stage not in TERMINAL_STAGES:
        return True
    return stage == "COMPLETED" and _created_ts(job) >= after


def find_keyed_job(
    session: HubSession, namespace: str, key: str, *, since: float | None = None, any_stage: bool = False
) -> JobInfo | None:
    """The newest job of `namespace` labelled with `key`: any of them (`any_stage`), else an unfinished one, or one
    created after `since` (default: within the reuse window): any stage with `since`, else only a completed one."""
    jobs = session.jobs_with_labels({KEY_LABEL: key}, namespace=namespace)
    for job in jobs:  # newest first
        if (job.labels or {}).get(KEY_LABEL) != key:
            continue  # the Hub filters by label; the key is compared here too, whatever the Hub answered
        if since is not None and _created_ts(job) >= since:
            return job
        if _reusable(job, after=time.time() - REUSE_WINDOW_S, any_stage=any_stage):
            return job
    return None


def submit_once(
    session: HubSession, request: JobRequest, *, key: str, explicit: bool, worst_usd: float | None = None
) -> Submitted:
    """Create the job of `request` at most once for `key` (the key label is added to the request). With `worst_usd`
    (a paid job's worst case), the total cap is checked and the job created under the visitor's namespace lock."""
    namespace = request.namespace or session.username
    request.labels[KEY_LABEL] = key
    with _lock(key):
        pending = _PENDING.get(key)
        try:
            since = pending.sent_at - CLOCK_SKEW_S if pending is not None else None
            existing = find_keyed_job(session, namespace, key, since=since, any_stage=explicit)
        except (HubUnavailable, RateLimited) as err:
            raise JobNotCreated(
                f"The job was not submitted: the Hub could not be asked whether it already exists ({err.message}) "
                "Nothing is running or billed; try again in a few minutes."
            ) from None
        if existing is not None:
            if pending is not None:
                _forget(key)
                OPEN.add(session.username, namespace, key, worst_usd or 0.0, for_s=LISTED_WITHIN_S, job_id=existing.id)
                note = "The Hub did not confirm your earlier submission in time, but it created the job: this is it."
                return Submitted(existing, "recovered", key, note)
            return Submitted(existing, "existing", key, _existing_note(existing, explicit))
        if pending is not None:
            if time.monotonic() < pending.until:
                raise JobOutcomeUnknown(
                    "Not submitted again: the Hub has not confirmed your earlier submission of this job yet and may "
                    f"still create it, so nothing new was sent. Look at My jobs for it; submit again after "
                    f"{pending.deadline}: the job is returned if the Hub has it by then, else it is created."
                )
            _forget(key)  # the Hub, read after the create's deadline, lists no job with the key
            OPEN.forget(session.username, namespace, key)
        with OPEN.lock(session.username, namespace):
            if worst_usd is not None:
                _within_total_cap(session, namespace, worst_usd)
            return _create(session, request, namespace, key, worst_usd or 0.0)


def _within_total_cap(session: HubSession, namespace: str, worst_usd: float) -> None:
    """PreflightFailed when the visitor's unfinished jobs in `namespace` plus this one pass the total cap."""
    try:
        unfinished = session.unfinished_jobs(namespace=namespace)
    except TrainerSpaceError as err:
        raise JobNotCreated(
            "The job was not submitted: your unfinished jobs could not be counted against this Space's total cap "
            f"({err.message}) Nothing is running or billed; try again in a few minutes."
        ) from None
    figures = open_worst_cases(session.username, namespace, unfinished, session.hardware())
    check, _ = total_check(worst_usd, figures, namespace)
    if check.status == Status.ERROR:
        raise PreflightFailed([check])


def _create(session: HubSession, request: JobRequest, namespace: str, key: str, worst_usd: float) -> Submitted:
    sent_at = time.time()
    try:
        job = session.submit_job(request)
    except RateLimited as err:
        raise JobNotCreated(f"The job was not created: {err.message}") from None
    except HubUnavailable as err:
        if not err.maybe_applied:
            raise JobNotCreated(
                f"The job was not created: the Hub could not be reached ({err.detail}). Nothing is running or "
                "billed; try again in a few minutes."
            ) from None
        return _settle(session, namespace, key, sent_at, err, worst_usd)
    OPEN.add(session.username, namespace, key, worst_usd, for_s=LISTED_WITHIN_S, job_id=job.id)
    return Submitted(job, "created", key)


def _existing_note(job: JobInfo, explicit: bool) -> str:
    why = "with the same idempotency key" if explicit else "with the same config"
    stage = job.status.stage.lower()
    return (
        f"Not submitted again: you already submitted this job {why}, and it is {stage} (job {job.id}). "
        + ("Change the config, or give another idempotency_key, to run it again." if not explicit else "")
    ).strip()


def _settle(session: HubSession, namespace: str, key: str, sent_at: float, err: HubUnavailable,
            worst_usd: float) -> Submitted:  # fmt: skip
    """The Hub's answer to the create was lost (timeout, dropped connection, 5xx): look the key up, then tell. A Hub
    that answered an error and lists no job with the key did not create it; a create whose answer never came is
    pending until its deadline (see the module's docstring)."""
    checked = False
    for pause in LOOKUP_PAUSES_S:
        time.sleep(pause)
        try:
            found = find_keyed_job(session, namespace, key, since=sent_at - CLOCK_SKEW_S)
        except TrainerSpaceError:
            continue
        if found is not None:
            OPEN.add(session.username, namespace, key, worst_usd, for_s=LISTED_WITHIN_S, job_id=found.id)
            note = f"The Hub's answer was lost ({err.detail}), but the job was created: this is it."
            return Submitted(found, "recovered", key, note)
        if checked and err.answered:  # two lookups that found nothing after an error answer: it was not created
            when = datetime.now(UTC).strftime("%H:%M:%S UTC")
            raise JobNotCreated(
                f"The job was not created: the Hub answered with an error ({err.detail}) and, checked at {when}, "
                "has no job with this submission's key. Nothing is running or billed; submitting again is safe."
            )
        checked = True
    where = f"{get_settings().endpoint}/jobs/{namespace}"
    look = f"Look at My jobs (or {where}) for a job labelled {KEY_LABEL}={key}"
    if err.answered:
        raise JobOutcomeUnknown(
            f"The Hub did not confirm the job ({err.detail}) and could not be asked whether it exists: it may have been "
            f"created. {look} before anything else. Submitting the same config again is safe: if the job exists you "
            "get it back, not a second one."
        )
    deadline_s = get_settings().create_deadline_s
    deadline = datetime.fromtimestamp(sent_at + deadline_s, UTC).strftime("%H:%M:%S UTC")
    with _PENDING_GUARD:
        now = time.monotonic()
        for expired in [k for k, p in _PENDING.items() if p.until <= now]:
            del _PENDING[expired]
        _PENDING[key] = _Pending(sent_at, now + deadline_s - (time.time() - sent_at), deadline)
    OPEN.add(session.username, namespace, key, worst_usd, for_s=deadline_s)  # it counts against the total meanwhile
    raise JobOutcomeUnknown(
        f"The Hub has not confirmed the job ({err.detail}) and does not list it yet: it may still create it, until "
        f"about {deadline}. {look}. Submitting the same config again is safe: you get the job back once the Hub lists "
        f"it, nothing new is sent before {deadline}, and after that the job is created only if the Hub still has "
        "none with this key."
    )


def forget_pending() -> None:
    """Forget every create in flight or unconfirmed, and the jobs created here (tests: a fresh Hub each)."""
    with _PENDING_GUARD:
        _PENDING.clear()
    OPEN.clear()


def _forget(key: str) -> None:
    with _PENDING_GUARD:
        _PENDING.pop(key, None)


def submit_local_once(backend: Any, launch: Any, *, key: str, explicit: bool) -> Submitted:
    """The same rule on this machine (the Local backend): a job already queued or run with `key` is returned."""
    with _lock(key):
        after = time.time() - REUSE_WINDOW_S
        for job in backend.list_jobs():  # newest first
            if (job.labels or {}).get(KEY_LABEL) == key and _reusable(job, after=after, any_stage=explicit):
                return Submitted(job, "existing", key, _existing_note(job, explicit))
        return Submitted(backend.submit(launch), "created", key)


def create_once(session: HubSession, launch: JobLaunch, *, key: str, explicit: bool, local: bool,
                what: str = "job", worst_usd: float | None = None) -> Submitted:  # fmt: skip
    """Create a planned job at most once for `key`: on this machine (the Local backend) or on Hugging Face Jobs
    (`worst_usd`: its worst case, checked against the total cap at the create)."""
    if local:
        step(f"starting the {what} on this machine")
        return submit_local_once(job_backend(LOCAL, session), launch, key=key, explicit=explicit)
    step("creating the job on Hugging Face")
    return submit_once(session, job_request(launch), key=key, explicit=explicit, worst_usd=worst_usd)
