"""Fixtures shared by the pipeline tests (see ``tests/execution/harness.py``)."""

from tests.execution.harness import runtime, traced

__all__ = ["runtime", "traced"]
