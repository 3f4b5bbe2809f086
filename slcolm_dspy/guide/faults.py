"""What to do when an LLM call fails: retry it, give the sentence up, or stop the run.

One retry layer, ours: LiteLLM is told not to retry (`num_retries=0`), so a 429 is waited out
once, with `Retry-After` honoured, instead of 3 x 3 times. A sentence whose calls keep failing is
recorded as failed (the SLM's output stands for it) and the run goes on; a rerun asks again for
the failed sentences only. A refused key or a malformed request fails every sentence alike, so it
stops the run at once with one line that names the cause.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

from slcolm_dspy.core.errors import SlcolmError

Verdict = Literal["retry", "give_up", "stop", "raise"]

# HTTP statuses that retrying can mend: rate limits, timeouts, server-side failures.
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Statuses that every request of the run would meet again: stop at once.
FATAL_STATUS = {
    401: "the LLM server refused the API key (HTTP 401): set the provider's key variable "
    "(e.g. OPENAI_API_KEY) in the environment",
    403: "the LLM server denied access (HTTP 403): check the key's permissions for this model",
    404: "the LLM server does not know this model or endpoint (HTTP 404): check --lm and --api-base",
    400: "the LLM server rejected the request (HTTP 400): check --lm, --api-base and --max-tokens",
    422: "the LLM server rejected the request (HTTP 422): check --lm and --max-tokens",
}


class LLMStopped(SlcolmError):
    """An LLM failure that every further call would repeat (a bad key, a malformed request)."""


class EmptyReply(Exception):
    """The server answered, but with no completion in it (`choices` empty or null): DSPy then
    hands back a prediction without its output fields. Retried like a transport failure, then
    the sentence is counted as failed."""


def reply_fields(prediction: Any, *names: str) -> list[Any]:
    """The prediction's output fields, or EmptyReply naming what the reply lacked."""
    missing = [name for name in names if name not in prediction]
    if missing:
        raise EmptyReply(f"the LLM's reply held no completion (no {', '.join(missing)})")
    return [prediction[name] for name in names]


class Interrupted(SlcolmError):
    """The user asked the run to stop (Ctrl-C); what was written is kept and a rerun resumes."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff; `Retry-After` wins when the server sends it
    (capped at `max_delay`, so a server asking for an hour cannot hang the run)."""

    retries: int = 3
    base_delay: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int, exc: BaseException) -> float:
        asked = retry_after(exc)
        chosen = asked if asked is not None else self.base_delay * 2**attempt
        return max(0.0, min(chosen, self.max_delay))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of a failed call, from DSPy's error (`status`), LiteLLM's (`status_code`)
    or the response either carries."""
    for name in ("status", "status_code"):
        status = getattr(exc, name, None)
        if isinstance(status, int):
            return status
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _chain(exc: BaseException) -> list[BaseException]:
    """The error and every error behind it: DSPy wraps LiteLLM, which wraps the OpenAI client,
    and only the innermost keep the server's headers."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        item = stack.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        stack += [item.__cause__, item.__context__]
    return seen


def retry_after(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait (`Retry-After`, seconds form), if it said."""
    for item in _chain(exc):
        given = getattr(item, "retry_after", None)
        if isinstance(given, int | float) and given >= 0:
            return float(given)
        response = getattr(item, "response", None)
        for headers in (
            getattr(item, "headers", None),
            getattr(item, "litellm_response_headers", None),
            getattr(response, "headers", None),
        ):
            try:
                value = headers.get("retry-after") if headers else None
            except AttributeError:
                continue
            if value is None:
                continue
            try:
                return float(value)
            except (TypeError, ValueError):
                return None  # an HTTP date: fall back to our own backoff
    return None


def _dspy_verdict(exc: BaseException) -> Verdict | None:
    """DSPy 3.4 wraps every engine failure in its own taxonomy (dspy.utils.exceptions); a
    context-window error never gets here (`judge` gives it up first, at any depth)."""
    from dspy.utils import exceptions as e

    stop = (e.LMAuthError, e.LMBillingError, e.LMInvalidRequestError, e.LMConfigurationError)
    if isinstance(exc, (*stop, e.LMUnsupportedFeatureError)):
        return "stop"
    if e.is_retryable_lm_error(exc) or isinstance(exc, e.LMUnexpectedError | e.LMProviderError):
        return "retry"
    return None


def _is_transport(exc: BaseException) -> bool:
    """A failure of the exchange itself (connection, timeout, a body that is not a reply)."""
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    import litellm
    import openai

    transport = (
        litellm.APIConnectionError,
        litellm.Timeout,
        litellm.APIError,
        litellm.ServiceUnavailableError,
        litellm.InternalServerError,
        litellm.RateLimitError,
        openai.APIConnectionError,
        openai.APIResponseValidationError,
    )
    return isinstance(exc, transport)


def judge(exc: BaseException) -> Verdict:
    """retry (worth asking again), give_up (this sentence only), stop (the whole run), or raise
    (not an LLM failure at all: a defect of ours must not pass as a failed sentence)."""
    from dspy.utils.exceptions import ContextWindowExceededError

    if isinstance(exc, EmptyReply):
        return "retry"
    if any(
        isinstance(e, ContextWindowExceededError) or "ContextWindowExceeded" in type(e).__name__
        for e in _chain(exc)
    ):
        return "give_up"  # a 400 about this sentence's prompt only: the others may fit
    status = status_of(exc)
    if status in FATAL_STATUS:
        return "stop"
    if status in RETRYABLE_STATUS or (status is not None and 500 <= status < 600):
        return "retry"
    verdict = _dspy_verdict(exc)
    if verdict is not None:
        return verdict
    if _is_transport(exc):
        return "retry"
    origin = type(exc).__module__.split(".")[0]
    return "give_up" if origin in ("litellm", "openai", "httpx", "httpcore", "dspy", "json") else "raise"


def describe(exc: BaseException) -> str:
    """One line for the record and the run summary: the status and the first line of the
    message, with any key the environment holds masked (a provider may echo it back)."""
    status = status_of(exc)
    first = redact((str(exc).strip().splitlines() or [type(exc).__name__])[0][:200])
    return f"HTTP {status}: {first}" if status else f"{type(exc).__name__}: {first}"


def redact(text: str) -> str:
    for name, value in os.environ.items():
        if len(value) >= 8 and name.upper().endswith(("_KEY", "_TOKEN", "_SECRET")) and value in text:
            text = text.replace(value, "***")
    return text


def stop_message(exc: BaseException) -> str:
    status = status_of(exc)
    cause = FATAL_STATUS.get(status or 0, "the LLM backend refused the request; every call would fail alike")
    return f"{cause} [{describe(exc)}]"


def wait(seconds: float, stop: threading.Event) -> None:
    """Sleep that Ctrl-C (the stop event) cuts short."""
    if stop.wait(seconds):
        raise Interrupted("interrupted")
