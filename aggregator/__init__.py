"""aggregator: poll RSS/Atom sources, merge shared stories, republish feeds."""

__version__ = "0.1.0"
PROJECT_URL = "https://github.com/aggregator-project/aggregator"
USER_AGENT = f"aggregator/{__version__} (+{PROJECT_URL})"
#: Namespace of our own feed elements (``republished``), documented in the README.
NAMESPACE = "https://github.com/aggregator-project/aggregator/ns/1.0"
