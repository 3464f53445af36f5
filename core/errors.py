"""The one exception hierarchy of opsloop.

::

    OpsloopError
     ├── ConfigError
     ├── IngestError
     │    ├── SchemaError            (a payload field is wrong: names the field path)
     │    │    └── DecodeError       (the payload cannot be decoded at all)
     │    ├── PayloadTooLargeError
     │    ├── UnsupportedMediaError
     │    └── BackpressureError      (queue full: retry after a delay)
     ├── StorageError(recoverable)
     ├── NotFoundError, ConflictError
     ├── AuthError
     │    └── ForbiddenError
     └── ActionError(recoverable)

Lower-level errors are re-raised as ours ``from exc``; the API maps this tree to HTTP
status codes in exactly one place (``api/errors.py``).
"""

from __future__ import annotations


class OpsloopError(Exception):
    """Base of every error opsloop raises on purpose."""

    recoverable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(OpsloopError):
    """Settings or a configuration file are invalid."""


class IngestError(OpsloopError):
    """A payload could not be taken in."""


class SchemaError(IngestError):
    """A field of a payload is missing or wrong; ``field`` is its path (``alerts[3].labels``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message


class DecodeError(SchemaError):
    """The payload is not decodable at all (bad JSON, protobuf, compression)."""


class PayloadTooLargeError(IngestError):
    """The payload is over the configured size limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"payload of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class UnsupportedMediaError(IngestError):
    """The content type or encoding is not one this endpoint speaks."""


class BackpressureError(IngestError):
    """The ingest queue is full; the client should retry after ``retry_after`` seconds."""

    recoverable = True

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StorageError(OpsloopError):
    """The store failed; ``recoverable`` says whether a retry can succeed."""

    def __init__(self, message: str, recoverable: bool = True) -> None:
        super().__init__(message)
        self.recoverable = recoverable


class NotFoundError(OpsloopError):
    """The named object does not exist."""


class ConflictError(OpsloopError):
    """The request conflicts with the current state of an object."""


class AuthError(OpsloopError):
    """No valid credentials were given."""


class ForbiddenError(AuthError):
    """The credentials lack the scope the endpoint needs."""


class ActionError(OpsloopError):
    """An automated action failed; ``recoverable`` says whether a retry can succeed."""

    def __init__(self, message: str, recoverable: bool = False) -> None:
        super().__init__(message)
        self.recoverable = recoverable
