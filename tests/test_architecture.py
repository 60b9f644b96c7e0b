"""The tree is the architecture: these tests keep it so."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import charter

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "charter"

# Dependencies point down (docs/ARCHITECTURE.md). A module may import its own layer or lower.
LAYER = {
    "core": 0,
    "contract": 1,
    "identity": 1,
    "policy": 1,
    "storage": 1,
    "execution": 2,
    "testing": 2,
    "observability": 3,
    "evaluation": 3,
    "governance": 4,
    "runtime": 5,
    "durable": 5,
    "server": 6,
    "cli": 6,
}


def _package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name.startswith("charter.")]


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(LAYER), "add new packages to LAYER and ARCHITECTURE.md"


def test_dependencies_point_down() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC.parent).with_suffix("")
        source = ".".join(relative.parts)
        source_pkg = _package_of(source)
        if source_pkg in ("", "__init__"):
            continue  # the curated public API re-exports from everywhere
        for target in _imports(path):
            target_pkg = _package_of(target)
            if LAYER[target_pkg] > LAYER[source_pkg]:
                violations.append(f"{source} imports {target}")
    assert violations == []


def test_nothing_imports_the_cli_or_server() -> None:
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if not path.is_relative_to(SRC / "cli")
        and any(_package_of(t) in ("cli", "server") for t in _imports(path))
    ]
    assert offenders == []


def test_every_package_is_shipped_in_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = set(config["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.relative_to(SRC.parent).parts)
        for p in SRC.rglob("*")
        if p.is_dir() and (p / "__init__.py").exists()
    } | {"charter"}
    assert on_disk <= shipped


def test_init_files_hold_no_logic() -> None:
    for init in SRC.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        for node in tree.body:
            assert isinstance(node, ast.Expr | ast.Import | ast.ImportFrom | ast.Assign), (
                f"{init}: only a docstring, imports and __all__ belong in __init__.py"
            )


def test_public_api_is_sorted_and_importable() -> None:
    assert charter.__all__ == sorted(charter.__all__)
    for name in charter.__all__:
        assert getattr(charter, name) is not None


def test_public_api_is_pinned() -> None:
    # Changing the public surface is a decision: update this list on purpose.
    assert charter.__all__ == [
        "ApprovalRequired",
        "AuditLog",
        "BudgetExceeded",
        "Charter",
        "CharterError",
        "CharterInvalid",
        "Decision",
        "GovernedOutcome",
        "KillSignal",
        "Message",
        "Model",
        "ModelResponse",
        "PermissionDenied",
        "Principal",
        "Problem",
        "Run",
        "RunResult",
        "Runtime",
        "Secret",
        "Settings",
        "Stage",
        "ToolCallRequest",
        "ToolContext",
        "ToolFailed",
        "ToolMisconfigured",
        "ToolResult",
        "ToolSpec",
        "ToolTimeout",
        "Usage",
        "UserError",
        "Verdict",
        "tool",
    ]
