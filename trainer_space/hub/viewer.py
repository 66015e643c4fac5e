"""The dataset viewer API (its own host; huggingface_hub has no client for it): GET calls with the visitor's
token when signed in, each within the viewer timeout, through huggingface_hub's shared client (so retried within
the budget of `hub/http.py`, honouring Retry-After). Only `HubSession.viewer` builds one."""

from __future__ import annotations

from typing import Any

from ..errors import HubUnavailable, hide_paths, redact
from ..settings import get_settings
from .http import RetryBudgetExhausted

# Viewer error codes that mean "the viewer has no rows for this dataset" (fall back to streaming), not an outage.
NO_DATA_CODES = frozenset({
    "DatasetInBlockListError", "ResponseNotReady", "ResponseNotFound", "StreamingRowsError", "FeaturesError",
    "InfoError", "DatasetWithScriptNotSupportedError", "DatasetWithTooManyConfigsError", "TooBigContentError",
    "TooManyColumnsError", "RowsPostProcessingError", "DatasetManualDownloadError", "ConfigNamesError",
    "SplitNamesFromStreamingError", "DatasetModuleNotInstalledError", "PreviousStepFormatError",
    "ParquetResponseEmptyError", "FileSystemError", "NormalRowsError",
})  # fmt: skip


def clean(text: str) -> str:
    """An error text safe to show: no token, no local path, one line, short."""
    return hide_paths(redact(" ".join(str(text).split())))[:300]


class ViewerError(Exception):
    """The viewer answered with an error status."""

    def __init__(self, status: int, code: str, message: str, retry_after: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    @property
    def no_data(self) -> bool:
        return self.status == 501 or self.code in NO_DATA_CODES


class Viewer:
    """GET calls to the dataset viewer, with the visitor's token when given."""

    def __init__(self, token: str | None) -> None:
        settings = get_settings()
        self.base, self.timeout = settings.viewer_url, settings.viewer_timeout_s
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    def __repr__(self) -> str:  # never print the token
        return f"Viewer({self.base!r})"

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """The JSON answer of `/{path}?{params}`; ViewerError for an error status, HubUnavailable for no answer."""
        from huggingface_hub.utils import get_session

        try:
            response = get_session().get(
                f"{self.base}/{path}", params=params, headers=self._headers, timeout=self.timeout
            )
        except RetryBudgetExhausted as err:
            if err.hub_status is not None:  # 429 / 5xx still, after the retries its budget allowed
                raise ViewerError(err.hub_status, "", "still failing after retries", err.retry_after) from None
            kind = "did not answer in time" if "Timeout" in (err.network_error or "") else "could not be reached"
            raise HubUnavailable(f"the dataset viewer {kind} ({self.timeout:g} s limit)") from None
        except Exception as err:  # timeouts and connection errors of the HTTP client
            kind = "did not answer in time" if "Timeout" in type(err).__name__ else "could not be reached"
            raise HubUnavailable(f"the dataset viewer {kind} ({self.timeout:g} s limit)") from None
        if response.status_code >= 400:
            code = response.headers.get("X-Error-Code", "")
            try:
                message = str(response.json().get("error", ""))
            except Exception:
                message = response.text[:200]
            raise ViewerError(response.status_code, code, clean(message), response.headers.get("Retry-After"))
        try:
            return response.json()
        except ValueError:
            raise HubUnavailable("the dataset viewer sent an unreadable answer") from None
