"""One small hierarchy of errors, each with a message a person can act on.

The service layer raises these; the UI turns them into `gr.Error` at one boundary.
`from_hub_error` translates huggingface_hub's HTTP errors (and network failures).
"""

from __future__ import annotations

import base64
import re
import urllib.parse

TOKENS_URL = "https://huggingface.co/settings/tokens"  # where a visitor creates a token


class TrainerSpaceError(Exception):
    """Base class: `str(err)` is the message shown to the visitor."""

    title = "Something went wrong"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(TrainerSpaceError, ValueError):
    title = "Invalid input"


class NotSignedIn(TrainerSpaceError):
    title = "Sign in required"

    def __init__(self, action: str = "continue") -> None:
        super().__init__(f"Sign in with Hugging Face to {action}.")
        self.action = action


class InvalidToken(TrainerSpaceError):
    title = "Sign-in expired"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "Your Hugging Face sign-in is no longer valid (401). Sign out and sign in again."
            + (f" ({detail})" if detail else "")
        )


class MissingPermission(TrainerSpaceError):
    title = "Missing permission"

    def __init__(self, what: str = "", detail: str = "") -> None:
        need = what or "this action"
        scopes = (
            "Sign in again and grant the requested permissions (the 'jobs' and 'write-repos' scopes), or use a token "
            "with those rights."
        )
        place = "Check that the namespace is yours, or that your role in the organization allows it."
        text = detail.lower()
        if any(w in text for w in ("namespace", "organization", " org ", "role")):
            advice = place  # the Hub refused for a namespace or an org role: blame no token scope
        elif any(w in text for w in ("permission", "scope", "token")):
            advice = scopes
        else:
            advice = (
                f"Your sign-in may lack a permission: {scopes[0].lower()}{scopes[1:]} Or: {place[0].lower()}{place[1:]}"
            )
        super().__init__(
            f"The Hub refused to let you {need} (403). {advice}" + (f" Hub said: {detail}" if detail else "")
        )


class NamespaceRole(TrainerSpaceError):
    """The visitor is in the org, but their role there does not allow the action (read role)."""

    title = "Not allowed in this organization"

    def __init__(self, namespace: str, role: str | None, action: str) -> None:
        self.namespace = namespace
        super().__init__(
            f"Your role in '{namespace}' is '{role or 'unknown'}': to {action} there you need the write, "
            "contributor or admin role. Ask an admin of the organization, or use your own namespace."
        )


class PaymentRequired(TrainerSpaceError):
    title = "Credit needed"

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "Hugging Face Jobs needs a payment method or pre-paid credit on your account (402). "
            "Add one at https://huggingface.co/settings/billing, then try again."
            + (f" Hub said: {detail}" if detail else "")
        )


class RepoNotFound(TrainerSpaceError):
    title = "Not found"

    def __init__(self, repo_id: str, repo_type: str = "model", detail: str = "") -> None:
        self.repo_id = repo_id
        kind = "dataset" if repo_type == "dataset" else "model" if repo_type == "model" else repo_type
        super().__init__(
            f"The {kind} '{repo_id}' was not found, or it is private and your account cannot read it. "
            "Check the spelling (owner/name) and your access." + (f" Hub said: {detail}" if detail else "")
        )


class GatedRepo(TrainerSpaceError):
    title = "Gated repository"

    def __init__(self, repo_id: str, repo_type: str = "model") -> None:
        self.repo_id = repo_id
        prefix = "datasets/" if repo_type == "dataset" else ""
        super().__init__(
            f"'{repo_id}' is gated: request access at https://huggingface.co/{prefix}{repo_id} "
            "with the account you signed in with, then try again."
        )


class JobNotFound(TrainerSpaceError):
    title = "Job not found"

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"Job '{job_id}' was not found in your namespaces. It may belong to another account.")


class RateLimited(TrainerSpaceError):
    title = "Rate limited"

    def __init__(self, retry_after: str | None = None) -> None:
        wait = f" about {retry_after} seconds" if retry_after else " a minute"
        super().__init__(f"The Hugging Face Hub is rate-limiting requests (429). Wait{wait} and try again.")


class HubUnavailable(TrainerSpaceError):
    """The Hub (or the viewer) did not answer properly. For reads nothing changed; a write may have happened
    (`maybe_applied`: the request left, and the answer was lost or was a 5xx), which the caller settles. `answered`:
    the Hub answered with an error status (other than 504); else no answer came (a timeout, a dropped connection, a
    gateway timeout), and a write may still be applied after the caller stopped waiting."""

    title = "Hub unavailable"

    def __init__(self, detail: str = "", *, maybe_applied: bool = False, answered: bool = False) -> None:
        self.detail, self.maybe_applied, self.answered = detail, maybe_applied, answered
        super().__init__(
            "The Hugging Face Hub did not answer properly. Nothing was changed; try again in a few minutes "
            "(status: https://status.huggingface.co)." + (f" ({detail})" if detail else "")
        )


class Busy(TrainerSpaceError):
    """Too much of one kind of work in flight (for this visitor, or for everyone): refused at once, not queued."""

    title = "Busy"

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} Nothing was changed; try again in a moment.")


class JobNotCreated(TrainerSpaceError):
    """A submission failed and the Hub was checked: no job with its key exists."""

    title = "Job not created"


class JobOutcomeUnknown(TrainerSpaceError):
    """A submission's answer was lost and the Hub could not be asked whether the job exists."""

    title = "Job status unknown"


# Hugging Face tokens: "hf_" then letters, digits and "_" (OAuth ones: "hf_oauth_..."), with at least one digit or
# capital (a real token has both; identifiers such as hf_hub_download or hf_transfer have neither and stay readable)
TOKEN_PATTERN = re.compile(r"hf_(?=[A-Za-z0-9_]*[A-Z0-9])[A-Za-z0-9_]{10,}")


MIN_SECRET = 8  # a shorter "secret" would redact ordinary text


def _base64_runs(raw: bytes) -> list[str]:
    """The base64 characters that encode `raw` wherever it sits in a longer base64 text: at each of the three byte
    alignments, without the first and last characters (they also carry the neighbours' bits), in both alphabets."""
    runs = []
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode()
        run = encoded[-(-8 * shift // 6) : (8 * (shift + len(raw))) // 6]
        runs += [run, run.translate(_URLSAFE)]
    return runs


_URLSAFE = str.maketrans("+/", "-_")


def secret_forms(*secrets: str | None) -> tuple[str, ...]:
    """Each secret and the common encodings a job (or a library) may print it in: base64 (alone or inside a longer
    base64 text, standard or URL-safe), URL-encoded (as `quote` writes it, and every byte as %XX), hex, and a
    Hugging Face token without its `hf_` prefix. Longest first, so that a longer form is replaced whole."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET:
            continue
        raw = secret.encode()
        forms |= {secret, urllib.parse.quote(secret, safe=""), raw.hex(), *_base64_runs(raw)}
        forms |= {"".join(f"%{b:02{case}}" for b in raw) for case in "Xx"}
        if secret.startswith("hf_") and len(secret) - 3 >= MIN_SECRET:
            forms.add(secret[3:])
    return tuple(sorted((f for f in forms if len(f) >= MIN_SECRET), key=len, reverse=True))


def _redact(text: str, forms: tuple[str, ...]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, "hf_***")
    return TOKEN_PATTERN.sub("hf_***", text)


def redact(text: str, *secrets: str | None) -> str:
    """`text` with anything shaped like a Hugging Face token, and each of `secrets` in any of its common encodings
    (`secret_forms`), replaced by `hf_***`."""
    return _redact(text, secret_forms(*secrets))


# an absolute local path ("/home/user/app/...", "/tmp/trainer-space-x/tokenizer.json"): not one inside a URL or a
# repo id (those have a letter, ":" or "/" before their slashes)
LOCAL_PATH = re.compile(r"(?<![\w/.:~-])/(?:[\w.@+-]+/)+[\w.@+-]*")


def hide_paths(text: str) -> str:
    """`text` with absolute local paths replaced by `<local path>` (the server's folders are nobody's business)."""
    return LOCAL_PATH.sub("<local path>", text)


def looks_like_token(text: object) -> bool:
    """Whether `text` holds something shaped like an access token (a form field must never carry one)."""
    return isinstance(text, str) and TOKEN_PATTERN.search(text) is not None


def redact_data(value: object, *secrets: str | None) -> object:
    """`redact` applied to every string inside JSON-like data (dicts, lists, tuples), keys included."""
    return _redact_data(value, secret_forms(*secrets))


def _redact_data(value: object, forms: tuple[str, ...]) -> object:
    if isinstance(value, str):
        return _redact(value, forms)
    if isinstance(value, dict):
        return {_redact_data(k, forms): _redact_data(v, forms) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_data(v, forms) for v in value)
    return value


def _hub_detail(err: Exception) -> str:
    """What the Hub said about a failed request (`HfHubHTTPError.server_message`), one line, no token."""
    detail = getattr(err, "server_message", None) or ""
    return redact(" ".join(str(detail).split()))[:300]


def from_hub_error(
    err: Exception, *, repo_id: str | None = None, repo_type: str = "model", job_id: str | None = None, action: str = ""
) -> TrainerSpaceError:
    """Translate an exception raised by huggingface_hub into a `TrainerSpaceError`."""
    if isinstance(err, TrainerSpaceError):
        return err
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, JobNotFoundError, RepositoryNotFoundError

    if isinstance(err, JobNotFoundError) and job_id:
        return JobNotFound(job_id)
    if isinstance(err, GatedRepoError):
        return GatedRepo(repo_id or "this repository", repo_type)
    if isinstance(err, RepositoryNotFoundError) and repo_id:
        return RepoNotFound(repo_id, repo_type)
    if isinstance(err, HfHubHTTPError) and err.response is not None:
        status = err.response.status_code
        detail = _hub_detail(err)
        if status == 401:
            return InvalidToken()
        if status == 402:
            return PaymentRequired(detail)
        if status == 403:
            if repo_id and "gated" in detail.lower():
                return GatedRepo(repo_id, repo_type)
            return MissingPermission(action, detail)
        if status == 404:
            if job_id:
                return JobNotFound(job_id)
            if repo_id:
                return RepoNotFound(repo_id, repo_type, detail)
            return HubUnavailable(f"404 {detail}".strip())
        if status == 429:
            return RateLimited(err.response.headers.get("Retry-After"))
        if status >= 500:
            return HubUnavailable(f"HTTP {status}", maybe_applied=True, answered=status != 504)
        return InvalidInput(f"The Hub refused the request ({status}): {detail or 'no detail'}")
    status = getattr(err, "hub_status", None)  # hub/http.py gave up retrying a read within its time budget
    if status == 429:
        return RateLimited(getattr(err, "retry_after", None))
    if status is not None:
        return HubUnavailable(f"HTTP {status}, still failing after retries", answered=True)
    # network failures (httpx2 transport errors, timeouts): the Hub did not answer. A request that never connected
    # changed nothing; one that was sent and then timed out or lost its connection may have been carried out.
    name = getattr(err, "network_error", None) or type(err).__name__
    never_sent = name in ("ConnectError", "ConnectTimeout", "PoolTimeout", "OfflineModeIsEnabled")
    kind = "did not answer in time" if "Timeout" in name else "could not be reached" if never_sent else name
    return HubUnavailable(kind if kind != name else f"connection lost: {name}", maybe_applied=not never_sent)
