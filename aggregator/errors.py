"""One exception family; each message names its stage so a one-line error says where it failed.

A source's failure also says what kind of failure it was (`FailureKind`): what
code decides on (is the network down? SPEC §5.4) reads the kind, never the text.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    """What went wrong in one poll of one source: set where the failure is met, stored with the source."""

    DNS = "dns"  # the host name did not resolve
    CONNECT = "connect"  # no connection was made: refused, unreachable, or the connect timed out
    TIMEOUT = "timeout"  # connected, but the whole request outlasted its deadline
    BROKEN = "broken"  # the connection was made, then reset or closed before a whole answer
    TLS = "tls"  # the TLS handshake or the certificate failed
    HTTP = "http"  # the server answered with a status other than 200 or 304
    TOO_LARGE = "too_large"  # the body was larger than max_bytes
    REDIRECT = "redirect"  # too many redirects, or one to an unsupported URL scheme
    ADDRESS = "address"  # led to an internal address the guard refuses
    REQUEST = "request"  # any other failure of the request
    FILE = "file"  # a file: source could not be read
    PARSE = "parse"  # the bytes are not a usable feed
    ABORTED = "aborted"  # the poll was cut short (its poller process died)
    INTERNAL = "internal"  # a bug met by this source's data

    @property
    def no_answer(self) -> bool:
        """No server answered at all: what a network outage looks like, from one poll (SPEC §5.4)."""
        return self in (FailureKind.DNS, FailureKind.CONNECT)


class AggregatorError(Exception):
    """Base of every error the CLI turns into a one-line message; a source's failure may note `status`, the HTTP
    status of the answer it came from (a 200 whose body was too large, too slow or no feed)."""

    stage = "aggregator"
    status: int | None = None

    def answered(self, status: int | None) -> AggregatorError:
        """This error, noting the status of the answer it came from unless it names one already."""
        if self.status is None:
            self.status = status
        return self

    def __str__(self) -> str:
        return f"{self.stage}: {super().__str__()}"


class ConfigError(AggregatorError):
    """The configuration file is unreadable or invalid; ``problems`` holds every FILE:LINE line."""

    stage = "config"

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


class FetchError(AggregatorError):
    """A source could not be fetched (network, HTTP status, limits); `kind` says which way."""

    stage = "fetch"

    def __init__(self, message: str, status: int | None = None, retry_after: str | None = None, *,
                 kind: FailureKind = FailureKind.REQUEST):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.kind = kind


class ParseError(AggregatorError):
    """The fetched bytes are not a usable feed."""

    stage = "parse"
    kind = FailureKind.PARSE


def failure_kind(exc: AggregatorError) -> FailureKind:
    """The kind of a source's failure: its own for fetch and parse errors, else a bug met by its data."""
    return exc.kind if isinstance(exc, (FetchError, ParseError)) else FailureKind.INTERNAL


class StoreError(AggregatorError):
    """The state database cannot be opened or written."""

    stage = "store"


class DamagedState(StoreError):
    """A value read back from the state is not one that was stored there (a damaged file, a bad restore).

    The value itself is never shown: it may be anything, a stored text included.
    """

    def __init__(self, what: str):
        super().__init__(f"the state holds {what}: it is damaged; restore it from a backup, "
                         "or move it aside to start afresh")


class PublishError(AggregatorError):
    """An output file could not be written."""

    stage = "publish"
