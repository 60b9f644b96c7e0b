"""The engine's shutdown drops DBOS's cancelled-task warnings, and nothing else, ever."""

from __future__ import annotations

import logging

import pytest

from charter.durable import DurableEngine

CANCELLED = "Asyncio task cancelled for workflow or step <function f at 0x1>"


def test_after_a_shutdown_dbos_warnings_are_logged_again(
    engine: DurableEngine, caplog: pytest.LogCaptureFixture
) -> None:
    dbos = logging.getLogger("dbos")
    engine.destroy()  # the shutdown's filter goes with the shutdown
    with caplog.at_level(logging.WARNING, logger="dbos"):
        dbos.warning(CANCELLED)
        dbos.warning("Background thread queue did not exit within timeout")
    assert CANCELLED in caplog.text
    assert "did not exit within timeout" in caplog.text
