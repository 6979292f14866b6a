"""User-facing errors. The CLI turns each into one plain line and a non-zero exit, never a traceback."""

from __future__ import annotations


class KompeteError(Exception):
    """A mistake or condition the user can fix; `hint` says how."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(KompeteError):
    exit_code = 2


class DataError(KompeteError):
    pass


class WeightsError(KompeteError):
    pass


class ArchiveError(KompeteError):
    pass


class TrainingError(KompeteError):
    pass


class KaggleError(KompeteError):
    pass


class CredentialsError(KaggleError):
    pass


class QuotaError(KaggleError):
    pass


class RateLimitError(KaggleError):
    """Kaggle answered 429; `retry_after` is the server's Retry-After in seconds, when it sent one."""

    def __init__(self, message: str, hint: str | None = None, retry_after: float | None = None):
        super().__init__(message, hint)
        self.retry_after = retry_after
