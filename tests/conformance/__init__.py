"""The connector conformance suite: subclass ``ConnectorConformance`` in a connector's tests."""

from .suite import ConnectorConformance, by_external_id, read_all

__all__ = ["ConnectorConformance", "by_external_id", "read_all"]
