"""``core.errors.first_line``: the one way a message of ours quotes another library's error
(the database handle, the audit log and the Cedar door used three copies of it)."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from charter.core.errors import first_line


def test_a_database_error_is_quoted_by_its_drivers_first_line_without_the_statement() -> None:
    driver = sqlite3.OperationalError("database is locked\n(more detail)")
    wrapped = OperationalError("INSERT INTO audit_records VALUES (?)", {}, driver)
    assert first_line(wrapped) == "database is locked"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("  unexpected token `;`\n  at 3:4 "), "unexpected token `;`"),
        (ValueError(""), "ValueError"),
        (OSError(), "OSError"),
    ],
)
def test_any_error_gives_one_line(error: BaseException, line: str) -> None:
    assert first_line(error) == line
