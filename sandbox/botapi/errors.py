"""Bot API errors, shaped as Telegram sends them.

python-telegram-bot turns the HTTP status and `description` into its exceptions
(`telegram/request/_baserequest.py`): 400 → BadRequest, 401/404 → InvalidToken,
403 → Forbidden, 409 → Conflict, any status with `parameters.retry_after` →
RetryAfter, anything else (5xx) → NetworkError.
"""

from __future__ import annotations

from typing import Any

#: Telegram's descriptions for the statuses that carry no more specific text.
STATUS_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class ApiError(Exception):
    """A Bot API call that fails: `{"ok": false, "error_code": ..., "description": ...}`."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any] | None = None
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def to_api(self) -> dict[str, Any]:
        """The JSON body Telegram answers with."""
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def bad_request(reason: str) -> ApiError:
    """400 `Bad Request: <reason>`."""
    return ApiError(400, f"Bad Request: {reason}")


def forbidden(reason: str) -> ApiError:
    """403 `Forbidden: <reason>`."""
    return ApiError(403, f"Forbidden: {reason}")


def conflict(reason: str) -> ApiError:
    """409 `Conflict: <reason>`."""
    return ApiError(409, f"Conflict: {reason}")


def too_many_requests(retry_after: int) -> ApiError:
    """429 with `parameters.retry_after` (whole seconds, at least 1)."""
    seconds = max(1, int(retry_after))
    return ApiError(
        429,
        f"Too Many Requests: retry after {seconds}",
        {"retry_after": seconds},
    )


def status_error(status: int, description: str | None = None) -> ApiError:
    """An error with Telegram's plain description for `status` unless one is given."""
    return ApiError(status, description or STATUS_DESCRIPTIONS.get(status, "Error"))
