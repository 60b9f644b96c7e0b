"""Writing charters with a known line layout, and reading back their problems."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from charter.contract.loader import check_charter
from charter.core.errors import Problem

FIXTURES = Path(__file__).parent / "fixtures"
GOOD_CHARTER = FIXTURES / "orders" / "charter.yaml"
EXAMPLE_CHARTER = Path(__file__).parents[2] / "examples" / "support_desk" / "charter.yaml"

#: Lines 1-4 of every charter the tests write; the body given to ``write`` starts on line 5.
HEADER = """\
charter: orders
model: {provider: openai, name: gpt-4o-mini}
prompt: prompt.md
toolkit: [tests.contract.fixtures_toolkit]
"""
BODY_LINE = 5


@dataclass(frozen=True)
class CharterFiles:
    """A directory holding one charter and the files it references."""

    root: Path

    @property
    def path(self) -> Path:
        return self.root / "charter.yaml"

    def write(self, body: str, *, header: str = HEADER) -> Path:
        """Write ``header`` + dedented ``body`` as the charter; return its path."""
        self.path.write_text(header + textwrap.dedent(body), encoding="utf-8")
        return self.path

    def add(self, relative: str, text: str) -> Path:
        """Write a file the charter references (prompt, Cedar, eval suite)."""
        target = self.root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
        return target

    def problems(self, body: str, *, header: str = HEADER) -> list[Problem]:
        return check_charter(self.write(body, header=header))

    def problem(self, body: str, *, header: str = HEADER) -> Problem:
        """The one problem ``body`` has (fails if it has none or several)."""
        found = self.problems(body, header=header)
        assert len(found) == 1, "\n".join(map(str, found)) or "no problems"
        return found[0]


def at_line(problems: list[Problem], line: int) -> list[Problem]:
    return [p for p in problems if p.line == line]


def lines(problems: list[Problem]) -> list[int]:
    return [p.line for p in problems]
