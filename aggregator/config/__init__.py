"""config: the YAML configuration, read once into frozen values that every stage is handed.

Owns the file's grammar (durations, sizes, ids, include/exclude patterns),
its validation with every problem reported as FILE:LINE, and the frozen
`Config` with its sources and outputs. May import only `aggregator.errors`.
"""

from .loader import load_config
from .model import DEFAULT_ATTRIBUTION, FORMATS, ID_PATTERN, Config, OutputConfig, SourceConfig, default_config_path
from .values import parse_duration, parse_size

__all__ = ["DEFAULT_ATTRIBUTION", "FORMATS", "ID_PATTERN", "Config", "OutputConfig", "SourceConfig",
           "default_config_path", "load_config", "parse_duration", "parse_size"]
