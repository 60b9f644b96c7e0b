"""The docs are executed: the README's code runs and CI runs the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_quickstart_has_exactly_two_setup_commands() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = [block.strip() for block in _blocks("bash", quickstart)]
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("charter demo")
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    test_command = _blocks("bash", quickstart)[1].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci_lines[-1] == test_command
    # Everything before it only prepares the machine (Postgres) and the environment.
    for line in ci_lines[:-1]:
        assert not line.strip().startswith(("python", "pytest", ".venv")), line


def test_readme_python_example_runs() -> None:
    [example] = _blocks("python")
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})


def test_architecture_doc_names_every_stage_module() -> None:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    stages = ROOT / "src" / "charter" / "execution" / "stages"
    for module in stages.glob("*.py"):
        if module.stem not in ("__init__", "base"):
            assert f"stages/{module.name}" in doc, f"{module.name} is missing from ARCHITECTURE.md"
