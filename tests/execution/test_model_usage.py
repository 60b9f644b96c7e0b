"""A model's reply is untrusted input: bad usage or a malformed turn ends the run ``failed``.

Every run goes through ``Runtime.run_agent`` on the real database (SQLite and Postgres), and
the checks read what an operator would: the outcome, the budget used, the audit record, the
``runs`` table and ``charter cost``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from charter_examples.support_desk.desk import SupportDesk
from typer.testing import CliRunner

from charter.cli import cost
from charter.core.errors import ModelResponseInvalid
from charter.core.settings import Settings
from charter.execution.agent import RunResult, run_agent
from charter.execution.model import (
    MAX_USAGE_TOKENS,
    Message,
    ModelResponse,
    ToolCallRequest,
    Usage,
    checked_response,
    response_from_dict,
    response_to_dict,
)
from charter.execution.run import Run
from charter.execution.steps import InProcessSteps, Work
from charter.identity.principal import Principal
from charter.identity.secrets import EnvSecretProvider
from charter.runtime import Runtime
from charter.storage import Database, upgrade
from charter.testing import FakeClock, ScriptedModel, reply, tool_call
from tests.execution.harness import REFUND_ENV, example_charter

ALICE = Principal("alice", "acme", roles=("support",))
MODEL = "openai:gpt-4o-mini"  # the example charter's model, which ScriptedModel names too
LIMIT = 12_000  # the example charter's max_total_tokens


@pytest.fixture
def db_runtime(db_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime on the ``db_url`` database (SQLite, then Postgres)."""
    database = Database(db_url)
    upgrade(database)  # Postgres is upgraded on purpose only, as in production
    database.dispose()
    settings = Settings(
        home=tmp_path / "home", secrets_dir=tmp_path / "secrets", database_url=db_url
    )
    with Runtime(
        settings, clock=FakeClock(), secret_providers=[EnvSecretProvider(REFUND_ENV)]
    ) as rt:
        yield rt


class Returns:
    """A model that returns whatever it is given, once per call (the last one repeatedly)."""

    provider = "openai"
    name = "gpt-4o-mini"

    def __init__(self, *replies: object) -> None:
        self.replies = list(replies)
        self.calls = 0

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> Any:
        self.calls += 1
        return self.replies[min(self.calls, len(self.replies)) - 1]


def run(runtime: Runtime, model: Any) -> RunResult:
    return asyncio.run(
        runtime.run_agent(
            example_charter(),
            model,
            "Please handle ticket T-1001.",
            principal=ALICE,
            resources=(SupportDesk.default(),),
        )
    )


def run_finished(runtime: Runtime) -> list[tuple[str, str | None, str]]:
    return [
        (r.entry.outcome, r.entry.rule_id, r.entry.reason)
        for r in runtime.audit.records()
        if r.entry.kind == "run_finished"
    ]


def cost_report(runtime: Runtime, db_url: str, tmp_path: Path) -> dict[str, Any]:
    app = typer.Typer()
    app.command()(cost.cost)
    app.command()(lambda: None)  # two commands, so "cost" is a subcommand as in the real app
    env = {"CHARTER_HOME": str(tmp_path / "home"), "CHARTER_DATABASE_URL": db_url}
    result = CliRunner().invoke(app, ["cost", "--json"], env=env)
    assert result.exit_code == 0, result.stdout + result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


HOSTILE_USAGE = [
    pytest.param(-(10**12), -(10**12), "input_tokens=-1000000000000", id="minus-a-trillion"),
    pytest.param(None, None, "input_tokens=None", id="none"),
    pytest.param(1.5, 2.5, "input_tokens=1.5", id="float"),
    pytest.param(True, 3, "input_tokens=True", id="bool"),
    pytest.param("12", "3", "input_tokens='12'", id="text"),
    pytest.param(10, -1, "output_tokens=-1", id="negative-output"),
    pytest.param(MAX_USAGE_TOKENS + 1, 0, "input_tokens=100000001", id="past-the-cap"),
    pytest.param(10**40, 0, "input_tokens=<an integer of 133 bits>", id="huge"),
    pytest.param(float("nan"), 0, "input_tokens=nan", id="nan"),
]


@pytest.mark.parametrize(("input_tokens", "output_tokens", "shown"), HOSTILE_USAGE)
def test_hostile_usage_fails_the_run_charged_its_reserved_worst_case(
    db_runtime: Runtime,
    db_url: str,
    tmp_path: Path,
    input_tokens: Any,
    output_tokens: Any,
    shown: str,
) -> None:
    runtime = db_runtime
    hostile = reply(
        "Reading.",
        tool_call("get_ticket", ticket_id="T-1001"),
        usage=Usage(input_tokens, output_tokens),
    )
    model = ScriptedModel([hostile, reply("Done.")])

    result = run(runtime, model)

    assert result.outcome == "failed"
    assert result.decision is not None
    assert result.decision.rule_id == "model.usage"
    assert result.reason.startswith(f"{MODEL} reported usage {shown}: a count of tokens")
    assert "the run was charged the call's reserved worst case" in result.reason
    assert len(model.calls) == 1  # the run stopped at the refused reply
    assert result.tool_calls == ()  # nothing the refused reply proposed ran
    # Charged the reservation: the prompt estimate plus max_output_tokens, priced.
    max_output = example_charter().spec.model.max_output_tokens
    assert max_output < result.total_tokens <= LIMIT
    assert result.cost_usd > 0
    assert f"({result.total_tokens} tokens, $" in result.reason
    assert run_finished(runtime) == [("failed", "model.usage", result.reason)]
    row = runtime.runs.get(result.run_id)
    assert (row.outcome, row.total_tokens, Decimal(row.cost_usd)) == (
        "failed",
        result.total_tokens,
        result.cost_usd,
    )
    report = cost_report(runtime, db_url, tmp_path)
    assert Decimal(report["total"]["model_usd"]) == result.cost_usd
    assert report["total"]["unreadable_cost"] == 0


def test_negative_usage_cannot_refill_the_token_budget(runtime: Runtime) -> None:
    # The review's run: minus a trillion tokens on the first turn, then turns of 3,000 tokens
    # each; before the fix it went on to use 80,000 tokens under a limit of 12,000.
    busy = [
        reply(
            "More.", tool_call("get_ticket", f"c{i}", ticket_id="T-1001"), usage=Usage(2000, 1000)
        )
        for i in range(30)
    ]
    model = ScriptedModel([reply("", usage=Usage(-(10**12), -(10**12))), *busy])

    result = run(runtime, model)

    assert (result.outcome, len(model.calls)) == ("failed", 1)
    assert 0 < result.total_tokens <= LIMIT


def test_usage_at_the_bounds_is_accepted(runtime: Runtime) -> None:
    model = ScriptedModel([reply("Done.", usage=Usage(1, 0))])
    result = run(runtime, model)
    assert (result.outcome, result.total_tokens) == ("succeeded", 1)

    zero = Usage(0, 0)
    at_cap = Usage(MAX_USAGE_TOKENS, MAX_USAGE_TOKENS)
    for usage in (zero, at_cap):
        response = ModelResponse(Message("assistant", "ok"), usage)
        assert checked_response(response, MODEL) is response


def test_usage_over_the_budget_is_a_budget_outcome_not_a_refusal(runtime: Runtime) -> None:
    # A valid but large count is the budget's business (the example escalates on exceed).
    model = ScriptedModel([reply("Done.", usage=Usage(1, 20_000))])
    result = run(runtime, model)
    assert result.outcome == "escalated"
    assert result.decision is not None
    assert result.decision.rule_id == "budget.max_total_tokens"


def call(call_id: Any = "c1", name: Any = "get_ticket", arguments: Any = None) -> Any:
    return ToolCallRequest(
        call_id, name, {"ticket_id": "T-1001"} if arguments is None else arguments
    )


def turn(*calls: Any, content: Any = "", role: Any = "assistant") -> ModelResponse:
    return ModelResponse(Message(role, content, tuple(calls)), Usage(10, 5))


cyclic: dict[str, Any] = {}
cyclic["self"] = cyclic


class Weird(ModelResponse):
    """A subclass that lies about its fields: only the exact type is accepted."""


MALFORMED = [
    pytest.param("I am done.", "returned of type str, not a ModelResponse", id="text"),
    pytest.param(None, "returned None, not a ModelResponse", id="none"),
    pytest.param({"message": "hi"}, "returned of type dict", id="dict"),
    pytest.param(Weird(Message("assistant", "x"), Usage(1, 1)), "of type Weird", id="subclass"),
    pytest.param(
        ModelResponse("hi", Usage(1, 1)),  # type: ignore[arg-type]
        "returned a message of type str",
        id="message-text",
    ),
    pytest.param(
        ModelResponse(Message("assistant", "x"), {"input_tokens": 1}),  # type: ignore[arg-type]
        "reported usage of type dict, not a Usage",
        id="usage-dict",
    ),
    pytest.param(turn(role="system"), "a message of role 'system', not 'assistant'", id="role"),
    pytest.param(turn(content=None), "returned message content None, not text", id="content-none"),
    pytest.param(turn(content=b"x"), "returned message content <bytes>, not text", id="bytes"),
    pytest.param(turn(content=42), "returned message content 42, not text", id="content-int"),
    pytest.param(
        ModelResponse(Message("assistant", "", "abc"), Usage(1, 1)),  # type: ignore[arg-type]
        "returned tool calls of type str",
        id="calls-text",
    ),
    pytest.param(
        turn({"id": "c1", "name": "get_ticket", "arguments": {}}),
        "proposed a tool call of type dict",
        id="call-dict",
    ),
    pytest.param(
        turn(call(arguments=["T-1001"])),
        "'get_ticket' arguments of type list, not an object",
        id="args-list",
    ),
    pytest.param(turn(call(arguments="T-1001")), "arguments of type str", id="args-text"),
    pytest.param(
        turn(call(arguments={1: "T-1001"})),
        "arguments whose keys are not all text",
        id="args-int-key",
    ),
    pytest.param(
        turn(call(arguments={"ticket_id": {"T-1001"}})),
        "arguments that are not JSON data (TypeError)",
        id="args-set",
    ),
    pytest.param(
        turn(call(arguments=cyclic)),
        "arguments that are not JSON data (ValueError)",
        id="args-cyclic",
    ),
    pytest.param(turn(call("c1"), call("c1")), "used the tool-call id 'c1' twice", id="dup-id"),
    pytest.param(turn(call("")), "the id ''; an id is text of 1 to 256", id="empty-id"),
    pytest.param(turn(call(42)), "the id 42; an id is text", id="int-id"),
    pytest.param(turn(call("x" * 300)), "an id is text of 1 to 256", id="long-id"),
    pytest.param(turn(call(name=["get_ticket"])), "named a tool <list>", id="name-list"),
]


@pytest.mark.parametrize(("response", "reason"), MALFORMED)
def test_a_malformed_reply_fails_the_run_without_a_raw_exception(
    runtime: Runtime, response: Any, reason: str
) -> None:
    model = Returns(response, ModelResponse(Message("assistant", "Done."), Usage(1, 1)))

    result = run(runtime, model)

    assert result.outcome == "failed"
    assert result.decision is not None
    assert result.decision.rule_id == ("model.usage" if "usage" in reason else "model.response")
    assert result.reason.startswith(MODEL)
    assert reason in result.reason
    assert (model.calls, result.tool_calls) == (1, ())
    assert result.total_tokens > 0  # charged its reserved worst case
    assert run_finished(runtime) == [("failed", result.decision.rule_id, result.reason)]


def test_calls_given_as_a_list_are_accepted_as_a_tuple(runtime: Runtime) -> None:
    listed = ModelResponse(Message("assistant", "", [call()]), Usage(10, 5))  # type: ignore[arg-type]
    model = Returns(listed, ModelResponse(Message("assistant", "Done."), Usage(1, 1)))

    result = run(runtime, model)

    assert result.outcome == "succeeded"
    assert [c.outcome for c in result.tool_calls] == ["executed"]
    assert isinstance(checked_response(listed, MODEL).message.tool_calls, tuple)


class CorruptedRecord(InProcessSteps):
    """Durable steps whose recorded model turn was altered before the run read it back."""

    def __init__(self, **changes: Any) -> None:
        self.changes = changes

    async def step(self, run: Run, name: str, work: Work) -> dict[str, Any]:
        out = await super().step(run, name, work)
        if name == "model" and "response" in out:
            return {"response": {**out["response"], **self.changes}}
        return out


@pytest.mark.parametrize(
    ("changes", "rule", "reason"),
    [
        ({"input_tokens": -5}, "model.usage", "reported usage input_tokens=-5"),
        ({"output_tokens": "7"}, "model.usage", "reported usage output_tokens='7'"),
        (
            {"tool_calls": [{"id": "c1"}]},
            "model.response",
            "cannot be read back (KeyError: 'name')",
        ),
        ({"content": None}, "model.response", "returned message content None"),
    ],
)
def test_a_corrupted_recorded_turn_fails_the_run(
    runtime: Runtime, changes: dict[str, Any], rule: str, reason: str
) -> None:
    charter = example_charter()
    run_ = runtime.start_run(charter, ALICE, resources=(SupportDesk.default(),))
    model = ScriptedModel([reply("Done.")])

    result = asyncio.run(
        run_agent(
            run_, model, "hi", price=runtime.price_for(charter), steps=CorruptedRecord(**changes)
        )
    )

    assert result.outcome == "failed"
    assert result.decision is not None
    assert result.decision.rule_id == rule
    assert reason in result.reason
    assert result.reason.startswith("a recorded model")


@pytest.mark.parametrize(
    "data",
    [
        None,
        "text",
        [],
        {},
        {
            "role": "assistant",
            "content": "x",
            "tool_calls": [],
            "tool_call_id": None,
            "name": None,
            "input_tokens": 1,
        },
        {
            "role": "assistant",
            "content": "x",
            "tool_calls": None,
            "tool_call_id": None,
            "name": None,
            "input_tokens": 1,
            "output_tokens": 1,
        },
        {
            "role": "assistant",
            "content": "x",
            "tool_calls": [],
            "tool_call_id": None,
            "name": None,
            "input_tokens": 1.0,
            "output_tokens": 1,
        },
    ],
)
def test_response_from_dict_refuses_what_response_to_dict_never_writes(data: Any) -> None:
    with pytest.raises(ModelResponseInvalid) as refused:
        response_from_dict(data)
    assert refused.value.decision.rule_id in ("model.usage", "model.response")
    assert refused.value.code == "model_response_invalid"


def test_response_from_dict_reads_back_what_response_to_dict_writes() -> None:
    response = turn(call("c1"), call("c2", arguments={"ticket_id": "T-2", "n": [1, None]}))
    assert response_from_dict(response_to_dict(response)) == response
