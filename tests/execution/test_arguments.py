"""Stage 3, the argument schema: exact types, sane sizes, valid text, amounts Cedar can compare.

Every refusal is ``denied`` with rule ``schema.<tool>`` and a reason a person can act on; the
tool never runs, no budget slot is used, and the audit keeps a bounded, redacted copy of what
the model sent.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from charter.contract.loader import Charter
from charter.contract.tool import tool
from charter.execution.run import Run
from charter.identity.principal import Principal
from charter.identity.secrets import REDACTED
from charter.runtime import Runtime
from tests.execution.harness import SECRET, call, start_example_run, tool_records, write_charter

received: list[dict[str, Any]] = []


@tool
def typed(
    count: int,
    label: str,
    amount: Decimal,
    ratio: float = 1.0,
    tags: list[str] | None = None,
) -> str:
    """A tool with one argument of each kind.

    Args:
        count: a whole number.
        label: some text.
        amount: money.
        ratio: a float.
        tags: labels.
    """
    received.append({"count": count, "label": label, "amount": amount, "ratio": ratio})
    return "ok"


GOOD = {"count": 3, "label": "x", "amount": "12.50"}


@pytest.fixture
def typed_run(runtime: Runtime, tmp_path: Path) -> Run:
    received.clear()
    charter: Charter = write_charter(
        tmp_path,
        """\
        tools:
          typed: {effect: write}
        budgets: {max_tool_calls: 100}
        policies: {max_argument_bytes: 1024}
        """,
        tools=[typed],
    )
    return runtime.start_run(charter, Principal("alice", "acme"))


def assert_schema_denied(run: Run, arguments: Any, reason: str, tool: str = "typed") -> None:
    result = call(run, tool, arguments)
    assert result.outcome == "denied"
    assert result.decision.rule_id == f"schema.{tool}"
    assert result.decision.stage == "schema"
    assert result.decision.reason.startswith("invalid arguments: ")
    assert reason in result.decision.reason
    assert f"[rule schema.{tool}]" in result.model_text


def test_well_formed_arguments_pass_and_reach_the_tool_typed(typed_run: Run) -> None:
    result = call(typed_run, "typed", GOOD)
    assert result.executed
    assert result.decision.rule_id == "tools.typed"
    assert received == [{"count": 3, "label": "x", "amount": Decimal("12.50"), "ratio": 1.0}]


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({**GOOD, "extra": 1}, "unknown argument 'extra'"),
        ({"count": 3, "amount": "1"}, "missing argument 'label'"),
        ({}, "missing argument 'count'"),
        ({**GOOD, "count": "5"}, "'count': Input should be a valid integer"),
        ({**GOOD, "count": 5.0}, "'count': Input should be a valid integer"),
        ({**GOOD, "count": True}, "'count': Input should be a valid integer"),
        ({**GOOD, "label": 5}, "'label': Input should be a valid string"),
        ({**GOOD, "label": None}, "'label': Input should be a valid string"),
        ({**GOOD, "amount": True}, "'amount'"),
        ({**GOOD, "amount": [1]}, "'amount'"),
        ({**GOOD, "tags": "a,b"}, "'tags'"),
        ({**GOOD, "tags": [1, 2]}, "'tags.0'"),
    ],
    ids=repr,
)
def test_wrong_shapes_and_types_are_denied_without_coercion(
    typed_run: Run, arguments: dict[str, Any], reason: str
) -> None:
    assert_schema_denied(typed_run, arguments, reason)
    assert received == []
    assert typed_run.ledger.totals().tool_calls == 0


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [(["T-1001"], "list"), ("T-1001", "str"), (None, "NoneType"), (5, "int"), ((), "tuple")],
    ids=repr,
)
def test_arguments_that_are_not_an_object_are_denied(
    typed_run: Run, arguments: Any, kind: str
) -> None:
    assert_schema_denied(typed_run, arguments, f"arguments must be a JSON object, not {kind}")


def test_arguments_over_max_argument_bytes_are_denied_with_the_size(
    typed_run: Run, runtime: Runtime
) -> None:
    assert_schema_denied(typed_run, {**GOOD, "label": "x" * 5000}, "bytes; the limit is 1024")
    [record] = tool_records(runtime)
    shown = record.entry.arguments
    assert shown is not None
    assert set(shown) == {"_unvalidated"}
    assert len(shown["_unvalidated"]) <= 2048 + 40  # bounded, with a note of what was cut
    assert "more chars]" in shown["_unvalidated"]


def test_the_example_uses_the_default_16_kib_limit(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    note = "n" * 17_000
    assert_schema_denied(
        run,
        {"ticket_id": "T-1001", "note": note},
        "bytes; the limit is 16384",
        tool="update_ticket",
    )


def test_deeply_nested_arguments_are_denied_not_crashing(typed_run: Run, runtime: Runtime) -> None:
    deep: list[Any] = []
    node = deep
    for _ in range(100_000):
        child: list[Any] = []
        node.append(child)
        node = child

    assert_schema_denied(typed_run, {**GOOD, "tags": deep}, "nested too deeply")
    [record] = tool_records(runtime)
    assert record.entry.arguments == {"_unvalidated": "<dict that cannot be shown>"}


def test_moderately_nested_arguments_fail_the_type_check(typed_run: Run) -> None:
    assert_schema_denied(typed_run, {**GOOD, "tags": [[["a"]]]}, "'tags.0'")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({**GOOD, "label": "\ud800"}, "label"),
        ({**GOOD, "label": "ok \udfff tail"}, "label"),
        ({**GOOD, "tags": ["\ud83d"]}, "tags"),
    ],
    ids=["lone-high", "lone-low", "in-list"],
)
def test_lone_surrogates_are_denied_as_invalid_utf8(
    typed_run: Run, runtime: Runtime, arguments: dict[str, Any], field: str
) -> None:
    assert_schema_denied(typed_run, arguments, "not valid UTF-8")
    [record] = tool_records(runtime)
    assert record.entry.arguments is not None
    record.entry.arguments["_unvalidated"].encode("utf-8")  # stored escaped
    assert runtime.audit.verify().ok


@pytest.mark.parametrize(
    "amount",
    [
        "NaN",
        "nan",
        "-NaN",
        "sNaN",
        "Infinity",
        "-Infinity",
        "inf",
        float("nan"),
        float("inf"),
        float("-inf"),
        Decimal("NaN"),
        Decimal("Infinity"),
    ],
    ids=repr,
)
def test_non_finite_amounts_are_denied(typed_run: Run, amount: Any) -> None:
    assert_schema_denied(typed_run, {**GOOD, "amount": amount}, "finite number")


@pytest.mark.parametrize("ratio", [float("nan"), float("inf"), float("-inf")], ids=repr)
def test_non_finite_floats_are_denied(typed_run: Run, ratio: float) -> None:
    assert_schema_denied(typed_run, {**GOOD, "ratio": ratio}, "'ratio' must be a finite number")


@pytest.mark.parametrize("amount", ["45.12345", "0.00001", Decimal("1.000001"), 0.123456], ids=repr)
def test_amounts_with_more_than_four_decimal_places_are_denied(typed_run: Run, amount: Any) -> None:
    assert_schema_denied(typed_run, {**GOOD, "amount": amount}, "'amount' has more than 4 decimal")


@pytest.mark.parametrize("amount", ["45.1234", "45.10000", 45.25, 7, "1E+2"], ids=repr)
def test_amounts_within_four_places_pass(typed_run: Run, amount: Any) -> None:
    assert call(typed_run, "typed", {**GOOD, "amount": amount}).executed


@pytest.mark.parametrize(
    "amount", ["922337203685477", "1e20", "1e30", "-1e300", 2**64, "9" * 40], ids=repr
)
def test_amounts_too_large_for_cedar_decimals_are_denied(typed_run: Run, amount: Any) -> None:
    assert_schema_denied(typed_run, {**GOOD, "amount": amount}, "'amount' is too large")


@pytest.mark.parametrize("count", [2**63, -(2**63) - 1, 2**64, 10**30], ids=repr)
def test_ints_outside_64_bits_are_denied(typed_run: Run, count: int) -> None:
    assert_schema_denied(typed_run, {**GOOD, "count": count}, "'count' does not fit in 64 bits")


@pytest.mark.parametrize("count", [2**63 - 1, -(2**63), 0], ids=repr)
def test_ints_at_the_64_bit_edges_pass(typed_run: Run, count: int) -> None:
    assert call(typed_run, "typed", {**GOOD, "count": count}).executed


def test_ints_with_thousands_of_digits_are_denied_and_audited(
    typed_run: Run, runtime: Runtime
) -> None:
    assert_schema_denied(typed_run, {**GOOD, "count": 10**5000}, "not JSON data")
    [record] = tool_records(runtime)
    assert record.entry.arguments == {"_unvalidated": "<dict that cannot be shown>"}


def test_schema_denial_audit_is_redacted_and_hashless(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    refund = {"ticket_id": "T-1001", "amount_usd": "45", "account": "acct-C-01"}
    assert call(run, "issue_refund", refund).executed  # resolves (and registers) the secret

    result = call(run, "issue_refund", {**refund, "memo": f"key={SECRET}"})

    assert result.decision.rule_id == "schema.issue_refund"
    assert SECRET not in str(result.arguments)
    record = tool_records(runtime)[-1]
    assert record.entry.arguments is not None
    shown = record.entry.arguments["_unvalidated"]
    assert SECRET not in shown
    assert REDACTED in shown
    assert record.entry.arguments_sha256 is None  # nothing validated, nothing to bind to


def test_validated_call_without_arguments_is_audited_as_validated(runtime: Runtime) -> None:
    run = start_example_run(runtime)
    result = call(run, "list_customers", {})
    assert result.executed
    [record] = tool_records(runtime)
    assert record.entry.arguments == {}
    assert record.entry.arguments_sha256 is not None


def test_ints_over_64_bits_inside_a_list_are_denied_before_cedar_sees_them(
    runtime: Runtime, tmp_path: Path
) -> None:
    @tool
    def pick(ids: list[int]) -> str:
        """Pick records.

        Args:
            ids: which records.
        """
        return "ok"

    charter = write_charter(
        tmp_path,
        """\
        tools:
          pick: {effect: read}
        policies:
          deny:
            - {action: pick, when: "7 in ids"}
        """,
        tools=[pick],
    )
    run = runtime.start_run(charter, Principal("alice", "acme"))

    assert call(run, "pick", {"ids": [1, 2**63 - 1]}).executed
    assert call(run, "pick", {"ids": [7]}).decision.rule_id == "deny[0]"
    assert_schema_denied(run, {"ids": [1, 2**63]}, "'ids' holds a number that does not fit", "pick")
    assert_schema_denied(run, {"ids": [-(2**70)]}, "does not fit in 64 bits", "pick")


def test_a_credential_is_redacted_before_any_tool_has_used_it(runtime: Runtime) -> None:
    # The model copies a credential from the user's input into its first call: the redactor
    # must already know the value, though no tool has resolved the credential yet.
    run = start_example_run(runtime)
    result = call(run, "update_ticket", {"ticket_id": "T-1001", "note": f"key={SECRET}"})
    assert result.executed
    record = tool_records(runtime)[-1]
    assert record.entry.arguments is not None
    assert SECRET not in str(record.entry.arguments)
    assert REDACTED in record.entry.arguments["note"]
