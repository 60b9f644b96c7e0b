"""The tree is the architecture: these tests keep it so."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

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


def _is_type_checking_imports(node: ast.stmt) -> bool:
    # ``if TYPE_CHECKING:`` holding only imports: what a type checker reads, never run.
    return (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
        and not node.orelse
        and all(isinstance(inner, ast.Import | ast.ImportFrom) for inner in node.body)
    )


def _is_docstring_or_lazy_table(node: ast.stmt) -> bool:
    # A bare expression is the docstring, or the one call handing a name table to
    # ``export_lazily`` (charter/__init__.py: importing the package must stay cheap).
    if not isinstance(node, ast.Expr):
        return False
    if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
        return True
    call = node.value
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id == "export_lazily"
        and [ast.unparse(arg) for arg in call.args[:1]] == ["globals()"]
        and len(call.args) == 2
        and isinstance(call.args[1], ast.Dict)
        and all(isinstance(part, ast.Constant) for part in call.args[1].keys + call.args[1].values)
    )


def test_init_files_hold_no_logic() -> None:
    for init in SRC.rglob("__init__.py"):
        tree = ast.parse(init.read_text(encoding="utf-8"))
        for node in tree.body:
            assert (
                isinstance(node, ast.Import | ast.ImportFrom | ast.Assign)
                or _is_docstring_or_lazy_table(node)
                or _is_type_checking_imports(node)
            ), f"{init}: only a docstring, imports and __all__ belong in __init__.py"


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


def _public_api_sources() -> tuple[dict[str, str], dict[str, str]]:
    """What ``charter/__init__.py`` tells a type checker and what it serves, name -> module."""
    tree = ast.parse((SRC / "__init__.py").read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    served: dict[str, str] = {}
    for node in tree.body:
        if _is_type_checking_imports(node):
            assert isinstance(node, ast.If)
            for inner in node.body:
                assert isinstance(inner, ast.ImportFrom)
                assert inner.module
                typed.update({alias.name: inner.module for alias in inner.names})
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            table = node.value.args[1]
            assert isinstance(table, ast.Dict)
            served.update(
                {
                    ast.literal_eval(k): ast.literal_eval(v)
                    for k, v in zip(table.keys, table.values, strict=True)
                    if k
                }
            )
    return typed, served


def test_type_checkers_see_what_the_package_serves() -> None:
    typed, served = _public_api_sources()
    assert typed == served
    assert sorted(served) == charter.__all__


def test_public_names_are_the_objects_of_their_modules() -> None:
    _, served = _public_api_sources()
    for name, module in served.items():
        assert getattr(charter, name) is getattr(importlib.import_module(module), name), name


def test_public_names_are_listed_before_they_are_read() -> None:
    listing = subprocess.run(
        [sys.executable, "-c", "import charter; print(' '.join(dir(charter)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(charter.__all__) <= set(listing)
    assert "__version__" in listing


def test_an_unknown_public_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match=r"^module 'charter' has no attribute 'NoSuchThing'$"):
        charter.NoSuchThing  # noqa: B018


def test_importing_the_package_imports_no_storage_or_durable_library() -> None:
    probe = (
        "import sys, charter; from charter import Settings, UserError; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dbos', 'alembic', 'sqlalchemy', 'opentelemetry', 'cedarpy'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
