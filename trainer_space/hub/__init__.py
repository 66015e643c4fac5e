"""The Hub layer: `HubSession` (the only door to the Hub), the dataset viewer client, the flavor catalogue."""

from .session import TERMINAL_STAGES, HubSession, JobRequest, Visitor

__all__ = ["TERMINAL_STAGES", "HubSession", "JobRequest", "Visitor"]
