"""``charter validate``: exit 0 for a good file, 1 listing every problem, 2 for no file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from charter.cli.app import app
from tests.contract.helpers import EXAMPLE_CHARTER, GOOD_CHARTER, HEADER, CharterFiles

# Three independent problems, on lines 7, 9 and 12 (the header takes lines 1-4).
BROKEN = """\
tools:
  get_order: {effect: read}
  update_order: {effect: write, compensate: undo}
  refund:
    effect: irreversible
    constraints:
      account: {max: 3}
policies:
  require_approval_for:
    - {action: refund, when: "amount > 200"}
"""


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args], env={"NO_COLOR": "1"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def invoke_json(*args: str | Path) -> tuple[int, dict[str, Any]]:
    code, out, err = invoke("validate", "--json", *args)
    assert err == ""
    return code, json.loads(out)


@pytest.fixture
def files(tmp_path: Path) -> CharterFiles:
    (tmp_path / "prompt.md").write_text("You handle orders.\n", encoding="utf-8")
    return CharterFiles(tmp_path)


# --- valid -----------------------------------------------------------------------------------


def test_a_valid_charter_exits_0_with_a_summary() -> None:
    code, out, err = invoke("validate", GOOD_CHARTER)
    assert (code, err) == (0, "")
    assert out.startswith(f"ok {GOOD_CHARTER}: charter 'orders', 6 tools, 20 rules, sha256 ")
    assert out.count("\n") == 1  # one line, never wrapped


def test_the_example_charter_validates_as_json() -> None:
    code, report = invoke_json(EXAMPLE_CHARTER)
    assert code == 0
    assert report["ok"] is True
    assert report["file"] == str(EXAMPLE_CHARTER)
    assert report["charter"] == "support-triage"
    assert len(report["content_sha256"]) == 64
    assert "issue_refund" in report["tools"]
    for rule_id in (
        "tools.issue_refund",
        "require_approval_for[0]",
        "deny[0]",
        "untrusted_content.send_email",
        "prod-refunds-need-support-role",
    ):
        assert rule_id in report["rules"], rule_id
    assert "cedar" not in report


def test_the_content_hash_is_the_same_on_every_run() -> None:
    _, first = invoke_json(EXAMPLE_CHARTER)
    _, second = invoke_json(EXAMPLE_CHARTER)
    assert first["content_sha256"] == second["content_sha256"]


def test_show_cedar_prints_every_policy_with_lines_unbroken() -> None:
    code, out, err = invoke("validate", "--show-cedar", EXAMPLE_CHARTER)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert '@id("require_approval_for[0]")' in lines
    assert '@id("prod-refunds-need-support-role")' in lines
    # Longer than any terminal: wrapping it would change the Cedar it shows.
    assert (
        'when { context.environment == "prod" && !context.principal.roles.contains("support") };'
        in lines
    )
    assert (
        'forbid(principal, action == Charter::Action::"issue_refund", resource) when '
        '{ context.args.amount_usd.greaterThan(decimal("200.0000")) };' in lines
    )


def test_show_cedar_with_json_adds_the_policies() -> None:
    code, report = invoke_json("--show-cedar", EXAMPLE_CHARTER)
    assert code == 0
    assert '@id("tools.issue_refund")\npermit(' in report["cedar"]


# --- invalid: exit 1, every problem ----------------------------------------------------------


def test_every_problem_is_listed_as_file_line_message_hint(files: CharterFiles) -> None:
    path = files.write(BROKEN)
    code, out, err = invoke("validate", path)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}:7: compensation tool 'undo' is not declared; "
        "declare it under tools: (declared: get_order, refund, update_order)",
        f"{path}:11: max does not apply to 'account' (it is String); "
        "remove it or change the argument type",
        f"{path}:14: in condition: 'amount' is not an argument of this tool that policies can "
        "see; use one of: account, amount_usd, count, note; "
        "or principal.*, environment, run.*, untrusted_read",
        f"3 problems in {path}",
    ]


def test_problems_as_json(files: CharterFiles) -> None:
    path = files.write(BROKEN)
    code, report = invoke_json(path)
    assert code == 1
    assert report["ok"] is False
    assert report["file"] == str(path)
    assert [(p["file"], p["line"]) for p in report["problems"]] == [
        (str(path), 7),
        (str(path), 11),
        (str(path), 14),
    ]
    first = report["problems"][0]
    assert set(first) == {"file", "line", "message", "hint"}
    assert first["message"] == "compensation tool 'undo' is not declared"
    assert first["hint"].startswith("declare it under tools:")


def test_problems_in_a_cedar_file_name_that_file(files: CharterFiles) -> None:
    cedar = files.add(
        "policies/extra.cedar",
        """\
        // line 1
        @id("typo")
        forbid (principal, action == Charter::Action::"refund", resource)
        when { context.args.amount > 3 };
        """,
    )
    path = files.write(
        "tools:\n  refund: {effect: irreversible}\npolicies:\n  cedar: policies/extra.cedar\n"
    )
    code, report = invoke_json(path)
    assert code == 1
    [problem] = report["problems"]
    assert (problem["file"], problem["line"]) == (str(cedar), 2)
    assert "args.amount" in problem["message"]


def test_one_problem_is_counted_in_the_singular(files: CharterFiles) -> None:
    path = files.write("tools:\n  get_order: {effect: read}\ntoolz: 1\n")
    code, _, err = invoke("validate", path)
    assert code == 1
    assert err.splitlines() == [
        f"{path}:7: unknown key 'toolz'; remove it or check the spelling (allowed: charter, "
        "description, model, prompt, toolkit, tools, budgets, policies, slos, evals, concurrency, "
        "rollout, autonomy)",
        f"1 problem in {path}",
    ]


def test_yaml_syntax_errors_exit_1_with_their_line(files: CharterFiles) -> None:
    path = files.write("tools:\n  get_order: {effect: read\n  refund: {effect: write}\n")
    code, report = invoke_json(path)
    assert code == 1
    [problem] = report["problems"]
    assert problem["line"] == 7
    assert problem["message"].startswith("invalid YAML:")


def test_non_utf8_bytes_exit_1_with_their_line(files: CharterFiles) -> None:
    files.path.write_bytes(b"charter: orders\nmodel: {provider: openai, name: m}\n# \xff\n")
    code, report = invoke_json(files.path)
    assert code == 1
    [problem] = report["problems"]
    assert (problem["line"], problem["message"]) == (3, "byte 0xff is not valid UTF-8")


@pytest.mark.parametrize("text", ["", "- a\n- b\n"])
def test_an_empty_or_non_mapping_file_exits_1(files: CharterFiles, text: str) -> None:
    files.path.write_text(text, encoding="utf-8")
    code, report = invoke_json(files.path)
    assert code == 1
    assert [p["line"] for p in report["problems"]] == [1]


def test_a_python_tag_is_refused_and_never_executed(files: CharterFiles, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = files.write(f'tools:\n  get_order: !!python/object/apply:os.system ["touch {marker}"]\n')
    code, report = invoke_json(path)
    assert code == 1
    assert not marker.exists()
    [problem] = report["problems"]
    assert problem["line"] == 6
    assert "is not allowed in a charter" in problem["message"]


def test_a_billion_laughs_file_is_refused(files: CharterFiles) -> None:
    levels = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for index in range(1, 9):
        name, previous = chr(ord("a") + index), chr(ord("a") + index - 1)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 10) + "]")
    files.path.write_text("\n".join(levels) + "\n", encoding="utf-8")
    code, report = invoke_json(files.path)
    assert code == 1
    assert "expands to more than" in report["problems"][0]["message"]


# --- cannot be read: exit 2 ------------------------------------------------------------------


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "charter.yaml"
    code, out, err = invoke("validate", missing)
    assert (code, out) == (2, "")
    assert f"'{missing}' is not a file" in err


def test_a_missing_file_exits_2_with_a_json_error(tmp_path: Path) -> None:
    missing = tmp_path / "charter.yaml"
    code, report = invoke_json(missing)
    assert code == 2
    assert report == {
        "ok": False,
        "error": f"'{missing}' is not a file; give the path of a charter YAML file",
    }


def test_a_directory_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("validate", tmp_path)
    assert code == 2
    assert "is not a file" in err


def test_an_unreadable_file_exits_2() -> None:
    # A regular file whose read fails even for root (this process's memory at address 0),
    # so the test runs as it would for an operator facing a permission error.
    code, _, err = invoke("validate", Path("/proc/self/mem"))
    assert code == 2
    assert "not readable" in err


def test_no_file_argument_is_a_usage_error() -> None:
    code, _, err = invoke("validate")
    assert code == 2
    assert "Missing argument" in err


# --- hostile files (issue 11, defect 3): a file:line problem and exit 1, never a traceback ---

REPO = Path(__file__).resolve().parents[2]
CHARTER_CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]
GET_ORDER_SCOPE = '(principal, action == Charter::Action::"get_order", resource)'


def _hostile(files: CharterFiles, case: str) -> tuple[Path, str, int]:
    """Write the charter for ``case``; return it, the file its problem is in, and the line."""
    tools = "tools:\n  get_order: {effect: read}\n"
    if case == "cedar-1000-parentheses":
        cedar = files.add(
            "x.cedar",
            f"forbid{GET_ORDER_SCOPE} when {{ " + "(" * 1_000 + "true" + ")" * 1_000 + " };\n",
        )
        return files.write(tools + "policies: {cedar: x.cedar}\n"), str(cedar), 1
    if case == "when-200-parentheses":
        deep = "(" * 200 + "order_id == 'x'" + ")" * 200
        body = f'{tools}policies:\n  deny:\n    - action: get_order\n      when: "{deep}"\n'
        return files.write(body), str(files.path), 10
    if case == "lone-surrogate":
        return files.write(tools + 'description: "bad \\uD800 text"\n'), str(files.path), 7
    if case == "eval-name-too-long":
        return files.write(tools + f"evals: {{golden: {'x' * 300}}}\n"), str(files.path), 7
    header = HEADER
    if case == "prompt-dev-zero":
        header = HEADER.replace("prompt.md", "/dev/zero")
    elif case == "prompt-fifo":
        os.mkfifo(files.root / "prompt.fifo")
        header = HEADER.replace("prompt.md", "prompt.fifo")
    elif case == "prompt-etc-shadow":
        header = HEADER.replace("prompt.md", "/etc/shadow")
    elif case == "prompt-dot-dot":
        header = HEADER.replace("prompt.md", "../../../../etc/passwd")
    elif case == "toolkit-this":
        header = HEADER.replace("[tests.contract.fixtures_toolkit]", "[this]")
        return files.write(tools, header=header), str(files.path), 4
    return files.write(tools, header=header), str(files.path), 3


HOSTILE = [
    "cedar-1000-parentheses",
    "when-200-parentheses",
    "lone-surrogate",
    "eval-name-too-long",
    "prompt-dev-zero",
    "prompt-fifo",
    "prompt-etc-shadow",
    "prompt-dot-dot",
    "toolkit-this",
]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_is_a_problem_at_its_line_as_json(
    files: CharterFiles, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delitem(sys.modules, "this", raising=False)  # so that importing prints
    path, file, line = _hostile(files, case)
    code, report = invoke_json(path)  # asserts that nothing reached stderr
    assert code == 1
    assert report["ok"] is False
    assert (file, line) in [(p["file"], p["line"]) for p in report["problems"]]


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_file_is_a_problem_at_its_line(
    files: CharterFiles, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delitem(sys.modules, "this", raising=False)
    path, file, line = _hostile(files, case)
    code, out, err = invoke("validate", path)
    assert (code, out) == (1, "")
    assert f"{file}:{line}: " in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("case", "toolkit"),
    [("cedar-1000-parentheses", None), ("unittest-main", "unittest.__main__")],
)
def test_in_a_process_of_its_own_the_hostile_file_exits_1(
    files: CharterFiles, case: str, toolkit: str | None
) -> None:
    # A segfault inside cedarpy or a module calling sys.exit ends the whole process, so
    # only a process of its own shows the exit code (the timeout is a no-hang bound).
    if toolkit is None:
        path, file, line = _hostile(files, case)
    else:
        header = HEADER.replace("[tests.contract.fixtures_toolkit]", f"[{toolkit}]")
        path = files.write("tools:\n  get_order: {effect: read}\n", header=header)
        file, line = str(path), 4
    python_path = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)]))
    env = {**os.environ, "PYTHONPATH": python_path, "NO_COLOR": "1"}
    done = subprocess.run(
        [*CHARTER_CLI, "validate", "--json", str(path)],
        env=env,
        cwd=files.root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (file, line) in [(p["file"], p["line"]) for p in report["problems"]]
    assert "Traceback" not in done.stderr


def test_a_fifo_given_as_the_charter_exits_2_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "charter.yaml"
    os.mkfifo(fifo)
    code, report = invoke_json(fifo)
    assert code == 2
    assert report["error"] == f"'{fifo}' is not a file; give the path of a charter YAML file"


def test_a_charter_name_too_long_for_the_file_system_exits_2(tmp_path: Path) -> None:
    code, _, err = invoke("validate", tmp_path / ("x" * 300 + ".yaml"))
    assert code == 2
    assert "is not readable (the name is too long)" in err
