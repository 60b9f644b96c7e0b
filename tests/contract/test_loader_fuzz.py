"""Fuzzing the loader: whatever the file says, ``check_charter`` returns problems (or none)
and ``charter validate`` exits 0, 1 or 2 with one JSON document; nothing raises, nothing
crashes the process, nothing waits forever.

Inputs are mutations of the example charter (deleted, duplicated and swapped lines, inserted
YAML traps: aliases, tags, brackets, surrogate escapes, long numbers, bytes that are not UTF-8)
and generated charters (random structures and strings under every key, random ``when:``
conditions, random Cedar text, names of FIFOs, directories, symlinks out and ``/dev/zero``).

Bounded for the test suite: ``CHARTER_FUZZ_EXAMPLES`` examples per property (default 60).
The long run by hand (see the report of issue 11) sets it high, sets
``CHARTER_FUZZ_SLOW_SECONDS`` to flag any example whose loading takes more CPU time than
that, and ``CHARTER_FUZZ_DATABASE`` to keep failing examples for replay::

    CHARTER_FUZZ_EXAMPLES=20000 CHARTER_FUZZ_SLOW_SECONDS=2 CHARTER_FUZZ_DATABASE=/tmp/fuzzdb \\
        nice -n 19 .venv/bin/python -m pytest tests/contract/test_loader_fuzz.py -x -q \\
        -p no:cacheprovider --hypothesis-show-statistics
"""

from __future__ import annotations

import json
import os
import shutil
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from typer.testing import CliRunner

from charter.cli.app import app
from charter.contract.files import ALLOW_OUTSIDE_ENV
from charter.contract.loader import check_charter, load_charter
from charter.core.errors import Problem
from tests.contract.helpers import EXAMPLE_CHARTER

EXAMPLES = int(os.environ.get("CHARTER_FUZZ_EXAMPLES", "60"))
SLOW_SECONDS = float(os.environ.get("CHARTER_FUZZ_SLOW_SECONDS", "0"))
# The long run keeps what it finds (CHARTER_FUZZ_DATABASE=dir) to replay it; the suite keeps
# nothing.
DATABASE = os.environ.get("CHARTER_FUZZ_DATABASE")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # no timing in the suite; the long run flags slow examples instead
    database=DirectoryBasedExampleDatabase(DATABASE) if DATABASE else None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

# --- where the charters live -----------------------------------------------------------------


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example's directory; each example rewrites its charter.yaml."""
    root = tmp_path_factory.mktemp("example")
    for name in ("prompts", "policies", "evals"):
        shutil.copytree(EXAMPLE_CHARTER.parent / name, root / name)
    return root


@pytest.fixture(scope="module")
def odd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A charter directory holding every kind of file a name might point at."""
    root = tmp_path_factory.mktemp("odd")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.md").write_text("a secret\n", encoding="utf-8")
    (root / "prompt.md").write_text("You handle orders.\n", encoding="utf-8")
    (root / "empty.md").write_bytes(b"")
    (root / "latin1.md").write_bytes(b"caf\xe9\n")
    (root / "dir").mkdir()
    os.mkfifo(root / "fifo")
    (root / "link-out").symlink_to(outside / "secret.md")
    (root / "loop").symlink_to(root / "loop")
    (root / "suite.yaml").write_text("suite: s\nkind: golden\ntasks: []\n", encoding="utf-8")
    return root


@pytest.fixture(autouse=True, scope="module")
def _no_extra_roots() -> Iterator[None]:
    saved = os.environ.pop(ALLOW_OUTSIDE_ENV, None)
    yield
    if saved is not None:
        os.environ[ALLOW_OUTSIDE_ENV] = saved


# --- the property ----------------------------------------------------------------------------


def assert_problems_or_a_charter(path: Path) -> list[Problem]:
    # CPU time, not wall time: the machine may be busy with other work, and what flags a
    # pathological input is the work the loader itself does.
    started = time.process_time()
    problems = check_charter(path)  # any exception fails the example, with its input
    elapsed = time.process_time() - started
    if SLOW_SECONDS:
        assert elapsed < SLOW_SECONDS, f"loading took {elapsed:.2f}s of CPU"
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.file
        assert isinstance(problem.line, int)
        assert problem.line >= 1
        assert problem.message
        for text in (problem.file, problem.message, problem.hint):
            assert not [c for c in text if unicodedata.category(c) in ("Cc", "Cf")], text
        assert len(problem.message) <= 5_000
    if not problems:
        charter = load_charter(path)
        assert len(charter.content_sha256) == 64
    event("loaded" if not problems else f"problem: {_kind(problems[0].message)}")
    return problems


def _kind(message: str) -> str:
    """A coarse label of a problem, for ``--hypothesis-show-statistics``."""
    for marker in (
        "invalid YAML",
        "YAML tag",
        "not valid UTF-8",
        "lone surrogate",
        "unknown key",
        "Input should",
        "String should",
        "in condition",
        "Cedar",
        "rule '",
        "outside the charter",
        "not a regular file",
        "not found",
        "cannot import",
        "toolkit",
        "nests",
    ):
        if marker in message:
            return marker
    return "other"


# --- mutations of the example charter --------------------------------------------------------

EXAMPLE_TEXT = EXAMPLE_CHARTER.read_text(encoding="utf-8")
LINES = EXAMPLE_TEXT.splitlines(keepends=True)

TRAPS = [
    '"\\uD800"',
    '"\\uD83D\\uDE00"',
    "!!python/object/apply:os.system ['true']",
    "!!binary aGk=",
    "&a [x, x]",
    "*a",
    "<<: *a",
    "[" * 50,
    "]" * 50,
    "{" * 50,
    "- " * 60,
    "? ",
    ": ",
    "%TAG !x! tag:x,2000:\n---\n",
    "---\n",
    "...\n",
    "\t",
    "\ufeff",
    "\x00",
    "\x1b[2J",
    "\u202e",
    "9" * 5_000,
    "0x" + "f" * 5_000,
    "1e999",
    ".nan",
    "-.inf",
    "~",
    "'",
    '"',
    "#",
    "\\",
    "when: " + "(" * 300,
    "(" * 2_000 + "true" + ")" * 2_000,
    "../../../../etc/passwd",
    "/dev/zero",
    "/etc/shadow",
    "x" * 300,
    "policies/extra.cedar",
    "evals/golden.yaml",
    "prompts/support.md",
]


@st.composite
def mutated_example(draw: st.DrawFn) -> bytes:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "replace", "trap"]))
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        if op == "delete" and lines:
            del lines[at : at + draw(st.integers(1, 5))]
        elif op == "duplicate" and lines:
            lines[at:at] = lines[at : at + draw(st.integers(1, 8))] * draw(st.integers(1, 3))
        elif op == "swap" and lines:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif op == "insert":
            lines.insert(at, draw(st.text(max_size=40)) + "\n")
        elif op in ("replace", "trap") and lines:
            line = lines[at]
            column = draw(st.integers(0, len(line)))
            piece = draw(st.sampled_from(TRAPS)) if op == "trap" else draw(st.text(max_size=20))
            cut = draw(st.integers(0, 30))
            lines[at] = line[:column] + piece + line[column + cut :]
    text = "".join(lines)
    # Lone surrogates from st.text become bytes that are not UTF-8, as a broken editor's would.
    return text.encode("utf-8", "surrogatepass")


@FUZZ
@given(data=mutated_example())
def test_a_mutated_example_charter_loads_or_has_problems(example_dir: Path, data: bytes) -> None:
    path = example_dir / "charter.yaml"
    path.write_bytes(data)
    assert_problems_or_a_charter(path)


# --- generated charters ----------------------------------------------------------------------

TOOLS = ["get_order", "update_order", "revert_order", "refund", "send_email", "delete_order"]
ARGUMENTS = ["order_id", "status", "account", "amount_usd", "count", "note", "to", "template"]
NAMES = [
    "prompt.md",
    "empty.md",
    "latin1.md",
    "dir",
    "fifo",
    "link-out",
    "loop",
    "suite.yaml",
    "missing.md",
    "../outside.md",
    "/etc/passwd",
    "/dev/zero",
    "x" * 300,
    "d/" * 2_100,
    "a\x00b",
    "",
    ".",
    "/",
]
MODULES = [
    "tests.contract.fixtures_toolkit",
    "tests.contract.fixtures_empty_toolkit",
    "tests.contract.fixtures_raising_toolkit",
    "tests.contract.fixtures_exiting_toolkit",
    "tests.contract.fixtures_input_toolkit",
    "tests.contract.fixtures_odd_toolkit",
    "charter_fuzz_no_such_module",
    "tests.contract.no_such_module",
    "1bad",
    "a-b",
    "",
]

# Any text, lone surrogates and control characters included (JSON escapes them, and
# JSON is YAML: a surrogate arrives as a "\\ud800" escape, as it would in a hostile file).
ANY_TEXT = st.text(st.characters(codec=None), max_size=30)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    ANY_TEXT,
    st.sampled_from(NAMES),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(ANY_TEXT, st.sampled_from(ARGUMENTS)), inner, max_size=4),
    ),
    max_leaves=20,
)

CONDITION_WORDS = [
    *ARGUMENTS,
    "args.count",
    "principal.user",
    "principal.roles",
    "environment",
    "run.tool_calls",
    "run.cost_usd",
    "untrusted_read",
    "tainted_any",
    "tainted.account",
    "and",
    "or",
    "not",
    "in",
    "like",
    "true",
    "false",
    ">",
    ">=",
    "<",
    "<=",
    "==",
    "!=",
    "(",
    ")",
    "[",
    "]",
    ",",
    '"x"',
    "'y'",
    '"*@example.com"',
    "200",
    "-1",
    "0.0001",
    "1.00001",
    "9" * 30,
    "922337203685477.5808",
]


@st.composite
def conditions(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["soup", "nested", "chain", "text"]))
    if kind == "soup":
        return " ".join(draw(st.lists(st.sampled_from(CONDITION_WORDS), max_size=30)))
    if kind == "nested":
        depth = draw(st.sampled_from([1, 15, 16, 17, 100, 600]))
        opener = draw(st.sampled_from(["(", "not ", "["]))
        closer = {"(": ")", "not ": "", "[": "]"}[opener]
        return opener * depth + "count > 1" + closer * depth
    if kind == "chain":
        joiner = draw(st.sampled_from([" or ", " and "]))
        return joiner.join(["count == 1"] * draw(st.sampled_from([2, 20, 31, 32, 33, 60, 100])))
    return draw(ANY_TEXT)


CEDAR_WORDS = [
    "permit",
    "forbid",
    "(",
    ")",
    "principal",
    "action",
    "resource",
    ",",
    ";",
    "when",
    "unless",
    "{",
    "}",
    "[",
    "]",
    "context",
    ".",
    "args",
    "order_id",
    "==",
    "&&",
    "||",
    "!",
    "-",
    "+",
    "*",
    "if",
    "then",
    "else",
    "has",
    "like",
    "is",
    "in",
    '"O-1"',
    "1",
    "9" * 25,
    "true",
    '@id("r")',
    '@verdict("require_approval")',
    '@verdict("maybe")',
    '@reason("why")',
    '@other("x")',
    "?principal",
    "//",
    "\n",
    '"',
    'Charter::Action::"get_order"',
    'decimal("1.5")',
    ".contains(",
]
SCOPE = '(principal, action == Charter::Action::"get_order", resource)'


@st.composite
def cedar_texts(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["soup", "nested", "chain", "valid", "text"]))
    if kind == "soup":
        return " ".join(draw(st.lists(st.sampled_from(CEDAR_WORDS), max_size=60)))
    if kind == "valid":
        rules = []
        for index in range(draw(st.integers(0, 4))):
            effect = draw(st.sampled_from(["permit", "forbid"]))
            rules.append(
                f'@id("r{index}")\n{effect}{SCOPE} when {{ context.args.order_id == "O-{index}" }};'
            )
        return "\n".join(rules)
    if kind == "nested":
        opener, closer = draw(
            st.sampled_from(
                [("(", ")"), ("[", "] == []"), ("{a: ", "} == {}"), ("if true then ", " else true")]
            )
        )
        depth = draw(st.sampled_from([10, 30, 31, 32, 33, 63, 64, 100, 1_000, 5_000]))
        if closer.startswith("]") or closer.startswith("}"):
            body = opener * depth + ("" if opener == "[" else "1") + closer[0] * depth + closer[1:]
        elif opener == "(":
            body = opener * depth + "true" + closer * depth
        else:
            body = opener * depth + "true" + closer * depth
        return f"forbid{SCOPE} when {{ {body} }};"
    if kind == "chain":
        op = draw(st.sampled_from([" && ", " || ", " + ", "."]))
        count = draw(st.sampled_from([10, 60, 63, 64, 70, 999, 1_000, 1_001, 20_000]))
        body = (
            "context" + ".a" * count + " == 1"
            if op == "."
            else op.join(["1" if op == " + " else "true"] * count)
        )
        if op == " + ":
            body += " == 1"
        return f"forbid{SCOPE} when {{ {body} }};"
    return draw(ANY_TEXT)


def yaml_line(key: str, value: Any) -> str:
    # JSON is YAML 1.2 flow style; json.dumps escapes what a YAML file could only escape.
    return f"{key}: {json.dumps(value)}\n"


ODD_PLACES = [
    "charter",
    "model",
    "prompt",
    "toolkit",
    "tool_name",
    "effect",
    "constraints",
    "declaration",
    "cedar_name",
    "sinks",
    "extras",
]
# Constraints each tool of fixtures_toolkit can take.
GOOD_CONSTRAINTS = {
    "get_order": [{"order_id": {"pattern": "^O-[0-9]+$", "max_length": 20}}],
    "update_order": [{"status": {"in": ["open", "closed"]}}],
    "revert_order": [{"order_id": {"max_length": 10}}],
    "refund": [{"amount_usd": {"max": 100, "min": 0.01}}, {"count": {"min": 1, "max": 3}}],
    "send_email": [{"to": {"domain_in": ["example.com"]}}, {"template": {"in": ["a", "b"]}}],
    "delete_order": [{"order_id": {"pattern": "^[A-Z]"}}],
}


@st.composite
def generated_charter(draw: st.DrawFn) -> tuple[str, str]:
    """A charter that is valid but for at most one odd place (so that the stages after the
    schema are reached), with a random Cedar file and random ``when:`` conditions."""
    odd = draw(st.one_of(st.none(), st.sampled_from(ODD_PLACES)))

    def pick(place: str, usual: Any, unusual: st.SearchStrategy[Any]) -> Any:
        return draw(unusual) if odd == place else usual

    tools: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(TOOLS), min_size=1, max_size=4, unique=True)):
        decl: dict[str, Any] = {
            "effect": pick("effect", "write", st.sampled_from(["read", "irreversible", "x", 1]))
        }
        if draw(st.booleans()):
            decl["constraints"] = pick(
                "constraints",
                draw(st.sampled_from(GOOD_CONSTRAINTS[name])),
                st.dictionaries(
                    st.sampled_from(ARGUMENTS),
                    st.dictionaries(
                        st.sampled_from(["max", "min", "in", "pattern", "domain_in", "max_length"]),
                        VALUES,
                        max_size=2,
                    ),
                    max_size=2,
                ),
            )
        if odd == "declaration":
            decl.update(
                draw(
                    st.dictionaries(
                        st.sampled_from(
                            ["roles", "compensate", "defer", "output", "timeout_seconds"]
                        ),
                        VALUES,
                        max_size=2,
                    )
                )
            )
        tools[pick("tool_name", name, ANY_TEXT)] = decl
    rules = [
        {"action": draw(st.sampled_from(sorted(tools))), "when": draw(conditions())}
        for _ in range(draw(st.integers(0, 2)))
    ]
    policies: dict[str, Any] = {"deny": rules} if rules else {}
    if draw(st.booleans()):
        policies["cedar"] = pick("cedar_name", "x.cedar", st.sampled_from(NAMES))
    if odd == "sinks":
        policies["untrusted_content"] = {
            "sinks": draw(st.lists(st.one_of(st.sampled_from(TOOLS), VALUES), max_size=2))
        }
    model = pick(
        "model",
        {"provider": "openai", "name": "m"},
        st.one_of(
            st.fixed_dictionaries(
                {
                    "provider": st.just("scripted"),
                    "name": st.just("s"),
                    "factory": st.sampled_from([f"{m}:Model" for m in MODULES]),
                }
            ),
            VALUES,
        ),
    )
    extra = pick(
        "extras",
        {},
        st.dictionaries(
            st.sampled_from(
                ["description", "budgets", "evals", "slos", "concurrency", "rollout", "extra"]
            ),
            st.one_of(VALUES, st.fixed_dictionaries({"golden": st.sampled_from(NAMES)})),
            max_size=2,
        ),
    )
    toolkit = pick(
        "toolkit",
        ["tests.contract.fixtures_toolkit"],
        st.lists(st.sampled_from(MODULES), min_size=1, max_size=3),
    )
    text = (
        yaml_line("charter", pick("charter", "orders", ANY_TEXT))
        + yaml_line("model", model)
        + yaml_line("prompt", pick("prompt", "prompt.md", st.sampled_from(NAMES)))
        + yaml_line("toolkit", toolkit)
        + yaml_line("tools", tools)
        + (yaml_line("policies", policies) if policies else "")
        + "".join(yaml_line(key, value) for key, value in extra.items())
    )
    return text, draw(cedar_texts())


@FUZZ
@given(generated=generated_charter())
def test_a_generated_charter_loads_or_has_problems(
    odd_dir: Path, generated: tuple[str, str]
) -> None:
    text, cedar = generated
    (odd_dir / "x.cedar").write_text(cedar, encoding="utf-8", errors="surrogatepass")
    path = odd_dir / "charter.yaml"
    path.write_text(text, encoding="utf-8")
    assert_problems_or_a_charter(path)


@settings(FUZZ, max_examples=max(EXAMPLES // 3, 10))
@given(data=mutated_example())
def test_charter_validate_exits_0_1_or_2_with_one_json_document(
    example_dir: Path, data: bytes
) -> None:
    path = example_dir / "charter.yaml"
    path.write_bytes(data)
    result = CliRunner().invoke(app, ["validate", "--json", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2)
    report = json.loads(result.stdout)
    assert report["ok"] is (result.exit_code == 0)
