"""Reading config values: durations, sizes, ids, URLs, each problem collected with its file and line."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from .model import DEFAULT_ATTRIBUTION, FORMATS, ID_PATTERN

DURATION_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
SIZE_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?\s*$", re.IGNORECASE)
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SIZE_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def parse_duration(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or like 90s, 15m, 2h, 7d")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = DURATION_PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write 90s, 15m, 2h, 7d or seconds")
        seconds = float(match.group(1)) * DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


def parse_size(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or like 512KB, 10MB")
    if isinstance(value, (int, float)):
        size = int(value)
    else:
        match = SIZE_PATTERN.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a size: write 512KB, 10MB or bytes")
        size = int(float(match.group(1)) * SIZE_UNITS[(match.group(2) or "").upper()])
    if size <= 0:
        raise ValueError("a size must be positive")
    return size


class Reader:
    """Walks the YAML tree, converting values and collecting every problem with its line."""

    def __init__(self, path: Path):
        self.path = path
        self.problems: list[str] = []

    def problem(self, line: int, key_path: str, message: str) -> None:
        self.problems.append(f"{self.path}:{line}: {key_path}: {message}")

    @staticmethod
    def line_of(node: Any, key: Any = None) -> int:
        lc = getattr(node, "lc", None)
        if lc is None:
            return 1
        try:
            if key is None:
                return lc.line + 1
            if isinstance(key, int):
                return lc.item(key)[0] + 1
            return lc.key(key)[0] + 1
        except (KeyError, IndexError, TypeError, AttributeError):
            return lc.line + 1

    def mapping(self, node: Any, key_path: str, allowed: set[str], line: int) -> dict:
        if node is None:
            return {}
        if not isinstance(node, dict):
            self.problem(line, key_path, "expected a mapping of keys to values")
            return {}
        for key in node:
            if str(key) not in allowed:
                self.problem(
                    self.line_of(node, key),
                    f"{key_path}.{key}" if key_path else str(key),
                    f"unknown key; allowed here: {', '.join(sorted(allowed))}",
                )
        return node

    def value(self, node: dict, key: str, key_path: str, convert: Callable[[Any], Any], default: Any) -> Any:
        if key not in node or node[key] is None:
            return default
        try:
            return convert(node[key])
        except (ValueError, TypeError) as exc:
            self.problem(self.line_of(node, key), f"{key_path}.{key}" if key_path else key, str(exc))
            return default


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)):
        raise ValueError("expected a text value")
    return str(value)


def _identifier(value: Any) -> str:
    text = _string(value)
    if not ID_PATTERN.match(text):
        raise ValueError(f"{text!r} is not a valid id: use only a-z, 0-9, _ and -")
    return text


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number")
    return value


def _positive_integer(value: Any) -> int:
    number = _integer(value)
    if number <= 0:
        raise ValueError("expected a number above 0")
    return number


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise ValueError("expected a list")
    return tuple(_string(v) for v in value)


def _http_url(value: Any) -> str:
    text = _string(value)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{text!r} is not an http(s) URL")
    return text


def _public_url(value: Any) -> str:
    """An http(s) URL without credentials, ending in '/': what paths such as websub/<id> are appended to."""
    text = _http_url(value)
    parts = urlsplit(text)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"{text!r}: give the plain address, without user, password, query or fragment")
    return text if text.endswith("/") else text + "/"


def _formats(value: Any) -> tuple[str, ...]:
    formats = _string_list(value)
    for name in formats:
        if name not in FORMATS:
            raise ValueError(f"unknown format {name!r}; choose from {', '.join(FORMATS)}")
    return ("atom",) + tuple(f for f in FORMATS[1:] if f in formats)


def _attribution(value: Any) -> str | None:
    if value is True:
        return DEFAULT_ATTRIBUTION
    if value is False:
        return None
    template = _string(value)
    try:
        now = datetime.now(timezone.utc)
        template.format(source="s", link="l", published=now, republished=now, source_url="u")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"bad attribution template ({exc}); fields are {{source}}, {{link}}, {{source_url}}, "
            "{published:%Y-%m-%d}, {republished:%Y-%m-%d}"
        ) from exc
    return template


def _listen_address(value: Any) -> tuple[str, int]:
    text = _string(value)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return (host.strip("[]") or "127.0.0.1", int(port))


#: strftime directives a date_format may use: dates and times, never locale- or platform-specific ones.
DATE_DIRECTIVES = set("aAbBdHIjmMpSyYZz%eGuVw")


def _date_format(value: Any) -> str:
    """`output.date_format`: a strftime pattern (%Y-%m-%d, %d %B %Y, %Y-%m-%d %H:%M %Z…)."""
    text = _string(value)
    if not text.strip():
        raise ValueError('an empty date format shows no date; write one such as "%Y-%m-%d" or "%d %B %Y"')
    directives = re.findall(r"%(.)", text.replace("%%", ""))
    unknown = sorted(set(directives) - DATE_DIRECTIVES)
    if unknown or text.replace("%%", "").endswith("%"):
        bad = ", ".join("%" + d for d in unknown) or "a lone %"
        raise ValueError(f"bad date format {text!r}: {bad} is not a date directive; use %Y %m %d %B %b %A %a "
                         "%H %M %S %Z (write %% for a percent sign)")
    return text


def _keep(value: Any) -> float | None:
    """retention.keep: a duration, or `forever` (never pruned), returned as None."""
    if isinstance(value, str) and value.strip().lower() == "forever":
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a retention: write a duration such as 90d, or forever") from None
