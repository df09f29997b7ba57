"""One exception family; each message names its stage so a one-line error says where it failed."""


class AggregatorError(Exception):
    """Base of every error the CLI turns into a one-line message."""

    stage = "aggregator"

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
    """A source could not be fetched (network, HTTP status, limits)."""

    stage = "fetch"

    def __init__(self, message: str, status: int | None = None, retry_after: str | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ParseError(AggregatorError):
    """The fetched bytes are not a usable feed."""

    stage = "parse"


class StoreError(AggregatorError):
    """The state database cannot be opened or written."""

    stage = "store"


class PublishError(AggregatorError):
    """An output file could not be written."""

    stage = "publish"
