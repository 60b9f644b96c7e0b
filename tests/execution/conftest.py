"""Fixtures shared by the pipeline tests (see ``tests/execution/harness.py``)."""

from tests.execution.harness import memory_runtime, runtime, store_runtime, traced

__all__ = ["memory_runtime", "runtime", "store_runtime", "traced"]
