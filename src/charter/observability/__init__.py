"""Observability: the audit log and tracing."""
