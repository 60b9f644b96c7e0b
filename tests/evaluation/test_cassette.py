"""Cassettes: record a model's answers once, replay them exactly, and miss loudly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.core import files as files_module
from charter.core.errors import CassetteMissing, UserError
from charter.evaluation.cassette import (
    FORMAT,
    VERSION,
    RecordingModel,
    ReplayModel,
    cassette_path,
    request_key,
)
from charter.execution.model import Message, Model, ModelResponse, response_to_dict
from charter.identity.principal import Principal
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import example_charter, make_runtime

TASK = "support/refund-small"
TOOLS: list[dict[str, Any]] = [
    {
        "name": "get_ticket",
        "description": "Read a ticket.",
        "parameters": {"type": "object", "properties": {"ticket_id": {"type": "string"}}},
    }
]
MAX = 512


def chat(model: Model, messages: Sequence[Message], *, tools: Any = None) -> ModelResponse:
    return asyncio.run(
        model.chat(messages, TOOLS if tools is None else tools, max_output_tokens=MAX)
    )


def conversation(model: Model, user: str = "Handle T-1001.") -> list[ModelResponse]:
    """A small agent-like exchange: ask, get a tool call, answer it, get the final text."""
    messages = [Message("system", "You are a support agent."), Message("user", user)]
    responses = []
    for _ in range(2):
        response = chat(model, messages)
        responses.append(response)
        messages.append(response.message)
        for call in response.message.tool_calls:
            messages.append(
                Message("tool", '{"status": "open"}', tool_call_id=call.id, name=call.name)
            )
    return responses


def script() -> ScriptedModel:
    return ScriptedModel(
        [
            reply("Reading.", tool_call("get_ticket", "call_1", ticket_id="T-1001")),
            reply("Refunded €45, ticket closed."),
        ]
    )


def record(directory: Path, task: str = TASK, user: str = "Handle T-1001.") -> RecordingModel:
    recorder = RecordingModel(script(), directory=directory, task=task)
    conversation(recorder, user)
    recorder.save()
    return recorder


def replayer(directory: Path, task: str = TASK, **kwargs: str) -> ReplayModel:
    names = {"provider": "openai", "name": "gpt-4o-mini", **kwargs}
    return ReplayModel(directory=directory, task=task, **names)


def test_replay_gives_back_exactly_what_was_recorded(tmp_path: Path) -> None:
    recorder = RecordingModel(script(), directory=tmp_path, task=TASK)
    recorded = conversation(recorder)
    recorder.save()

    replay = replayer(tmp_path)
    replayed = conversation(replay)

    assert [response_to_dict(r) for r in replayed] == [response_to_dict(r) for r in recorded]
    assert recorded[0].usage.input_tokens > 0  # the provider's usage is kept as it answered
    assert replay.steps == 2
    assert replay.misses == []
    assert (recorder.provider, recorder.name) == ("openai", "gpt-4o-mini")


def test_the_cassette_file_is_readable_json_one_file_per_task(tmp_path: Path) -> None:
    record(tmp_path)

    path = tmp_path / "support" / "refund-small.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["format"] == FORMAT == "charter.cassette"
    assert document["version"] == VERSION == 1
    assert document["task"] == TASK
    assert document["model"] == "openai:gpt-4o-mini"
    first, second = document["entries"]
    assert (first["step"], second["step"]) == (0, 1)
    assert first["request"] == {"messages": 2, "last_message": "Handle T-1001."}
    assert second["request"] == {"messages": 4, "last_message": '{"status": "open"}'}
    assert first["response"]["tool_calls"] == [
        {"id": "call_1", "name": "get_ticket", "arguments": {"ticket_id": "T-1001"}}
    ]
    assert second["response"]["content"] == "Refunded €45, ticket closed."
    assert "€45" in path.read_text(encoding="utf-8")  # readable, not \u-escaped
    assert len(first["key"]) == 64


def test_a_long_last_message_is_summarised_to_200_characters(tmp_path: Path) -> None:
    recorder = RecordingModel(ScriptedModel([reply("ok")]), directory=tmp_path, task="suite/long")
    chat(recorder, [Message("user", "x" * 500)])
    path = recorder.save()

    [entry] = json.loads(path.read_text(encoding="utf-8"))["entries"]
    assert entry["request"] == {"messages": 1, "last_message": "x" * 200}


def test_a_changed_request_misses_naming_task_step_path_and_what_to_do(tmp_path: Path) -> None:
    record(tmp_path, user="Handle T-1001.")
    replay = replayer(tmp_path)
    messages = [Message("system", "You are a support agent."), Message("user", "Handle T-1001.")]
    first = chat(replay, messages)  # step 1 still matches
    messages += [first.message, Message("tool", '{"status": "closed"}', tool_call_id="call_1")]

    with pytest.raises(CassetteMissing) as caught:
        chat(replay, messages)

    text = str(caught.value)
    key = request_key(messages, TOOLS, max_output_tokens=MAX, model="openai:gpt-4o-mini")
    assert "'support/refund-small'" in text
    assert "step 2" in text
    assert str(tmp_path / "support" / "refund-small.json") in text
    assert key[:12] in text
    assert "charter eval ... --record DIR" in text
    assert isinstance(caught.value, UserError)
    assert caught.value.code == "cassette_missing"
    assert replay.misses == [text]  # recorded before raising: the agent loop swallows it


def test_every_part_of_the_request_is_in_the_key(tmp_path: Path) -> None:
    messages = [Message("user", "hi")]
    base = request_key(messages, TOOLS, max_output_tokens=MAX, model="openai:gpt-4o-mini")

    assert base == request_key(
        [Message("user", "hi")], list(TOOLS), max_output_tokens=MAX, model="openai:gpt-4o-mini"
    )
    variants = [
        request_key(
            [Message("user", "hi!")], TOOLS, max_output_tokens=MAX, model="openai:gpt-4o-mini"
        ),
        request_key(
            [Message("system", "hi")], TOOLS, max_output_tokens=MAX, model="openai:gpt-4o-mini"
        ),
        request_key(messages, [], max_output_tokens=MAX, model="openai:gpt-4o-mini"),
        request_key(messages, TOOLS, max_output_tokens=MAX + 1, model="openai:gpt-4o-mini"),
        request_key(messages, TOOLS, max_output_tokens=MAX, model="openai:gpt-4o"),
        request_key(messages, TOOLS, max_output_tokens=MAX, model="anthropic:gpt-4o-mini"),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_tool_call_ids_are_part_of_the_key_but_approval_ids_are_not() -> None:
    def key(*messages: Message) -> str:
        return request_key(messages, TOOLS, max_output_tokens=MAX, model="openai:gpt-4o-mini")

    assert key(Message("tool", "ok", tool_call_id="call_1")) != key(
        Message("tool", "ok", tool_call_id="call_2")
    )
    asked = reply("", tool_call("refund", "call_1", amount=5)).message
    assert key(asked) != key(reply("", tool_call("refund", "call_2", amount=5)).message)

    # An approval request id derives from the random run id: it must not change the key.
    first = "APPROVAL REQUIRED: over 100 USD (request apr_" + "a" * 32 + ")"
    second = "APPROVAL REQUIRED: over 100 USD (request apr_" + "b" * 32 + ")"
    assert key(Message("tool", first)) == key(Message("tool", second))
    assert key(Message("tool", first)) != key(Message("tool", "APPROVAL REQUIRED: other"))


def test_another_model_misses_and_says_which_model_was_recorded(tmp_path: Path) -> None:
    record(tmp_path)
    replay = replayer(tmp_path, name="gpt-4o")

    with pytest.raises(CassetteMissing, match="recorded with model 'openai:gpt-4o-mini'"):
        conversation(replay)
    assert len(replay.misses) == 1


def test_a_missing_cassette_names_the_task_and_path(tmp_path: Path) -> None:
    replay = replayer(tmp_path)

    with pytest.raises(CassetteMissing) as caught:
        conversation(replay)

    text = str(caught.value)
    assert "'support/refund-small'" in text
    assert str(tmp_path / "support" / "refund-small.json") in text
    assert "--record DIR" in text
    assert replay.misses == [text]


def write(tmp_path: Path, content: str) -> Path:
    path = cassette_path(tmp_path, TASK)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def test_corrupt_json_is_refused_naming_the_path(tmp_path: Path) -> None:
    record(tmp_path)
    path = cassette_path(tmp_path, TASK)
    path.write_text(path.read_text(encoding="utf-8")[:-20], encoding="utf-8")
    replay = replayer(tmp_path)

    with pytest.raises(CassetteMissing, match="invalid JSON") as caught:
        conversation(replay)
    assert str(path) in str(caught.value)
    assert replay.misses == [str(caught.value)]


def valid_document(tmp_path: Path) -> dict[str, Any]:
    record(tmp_path)
    document: dict[str, Any] = json.loads(cassette_path(tmp_path, TASK).read_text(encoding="utf-8"))
    return document


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(format="vcr"), "format is 'vcr'"),
        (lambda d: d.update(version=2), "version is 2"),
        (lambda d: d.update(version=True), "version is True"),
        (lambda d: d.pop("version"), "version is None"),
        (lambda d: d.update(task="support/other"), "recorded for task 'support/other'"),
        (lambda d: d.update(model=None), "'model'"),
        (lambda d: d.update(entries={}), "'entries'"),
        (lambda d: d["entries"].append("oops"), "entry 2: not a JSON object"),
        (lambda d: d["entries"][0].update(key="ABC"), "entry 0: 'key'"),
        (lambda d: d["entries"][1].update(step=-1), "entry 1: 'step'"),
        (lambda d: d["entries"][1].pop("request"), "entry 1: 'request'"),
        (lambda d: d["entries"][0].pop("response"), "entry 0: 'response'"),
        (lambda d: d["entries"][0]["response"].pop("name"), "'response.name'"),
        (lambda d: d["entries"][0]["response"].update(role="user"), "'response.role'"),
        (lambda d: d["entries"][0]["response"].update(content=3), "'response.content'"),
        (lambda d: d["entries"][0]["response"].update(input_tokens="9"), "input_tokens"),
        (lambda d: d["entries"][0]["response"].update(tool_calls=None), "tool_calls"),
        (lambda d: d["entries"][0]["response"]["tool_calls"][0].pop("id"), "a tool call"),
        (lambda d: d["entries"].append(d["entries"][0]), "entry 2: its key appears"),
    ],
)
def test_a_malformed_cassette_is_refused_naming_the_path(
    tmp_path: Path, change: Any, expected: str
) -> None:
    document = valid_document(tmp_path)
    change(document)
    path = write(tmp_path, json.dumps(document))
    replay = replayer(tmp_path)

    with pytest.raises(CassetteMissing) as caught:
        conversation(replay)

    assert expected in str(caught.value)
    assert str(path) in str(caught.value)
    assert replay.misses == [str(caught.value)]


@pytest.mark.parametrize("content", ["[]", '"charter.cassette"', "\udc80"])
def test_a_cassette_that_is_not_an_object_is_refused(tmp_path: Path, content: str) -> None:
    path = cassette_path(tmp_path, TASK)
    path.parent.mkdir(parents=True)
    path.write_bytes(content.encode("utf-8", "surrogateescape"))

    with pytest.raises(CassetteMissing, match=r"not usable|cannot read"):
        conversation(replayer(tmp_path))


def test_cassette_path_maps_suite_and_task_under_the_directory(tmp_path: Path) -> None:
    assert cassette_path(tmp_path, "support/refund-1.v2_b") == (
        tmp_path / "support" / "refund-1.v2_b.json"
    )


@pytest.mark.parametrize(
    "task",
    [
        "../x",
        "support/../x",
        "support/..",
        "../../etc/passwd",
        "/etc/passwd",
        "support//x",
        "support/",
        "/x",
        "support",
        "support/x/y",
        "support/.hidden",
        "support/-x",
        "Support/x",
        "support/x\n",
        "support/x y",
        "support/a\\b",
        "support/x\x00",
        "",
    ],
)
def test_unsafe_task_keys_are_refused(tmp_path: Path, task: str) -> None:
    with pytest.raises(ValueError, match="invalid task key"):
        cassette_path(tmp_path, task)
    with pytest.raises(ValueError, match="invalid task key"):
        RecordingModel(script(), directory=tmp_path, task=task)
    with pytest.raises(ValueError, match="invalid task key"):
        replayer(tmp_path, task=task)


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    record(tmp_path, user="first")
    record(tmp_path, user="second")  # a new recording replaces the old one

    assert [p.name for p in (tmp_path / "support").iterdir()] == ["refund-small.json"]
    document = json.loads(cassette_path(tmp_path, TASK).read_text(encoding="utf-8"))
    assert document["entries"][0]["request"]["last_message"] == "second"


def test_a_failed_save_keeps_the_old_cassette_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record(tmp_path, user="first")
    before = cassette_path(tmp_path, TASK).read_bytes()
    recorder = RecordingModel(script(), directory=tmp_path, task=TASK)
    conversation(recorder, "second")

    def broken(_src: Any, _dst: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files_module.os, "replace", broken)  # the cassette writes through it
    with pytest.raises(OSError, match="disk full"):
        recorder.save()

    assert [p.name for p in (tmp_path / "support").iterdir()] == ["refund-small.json"]
    assert cassette_path(tmp_path, TASK).read_bytes() == before


def test_the_same_request_twice_keeps_the_first_answer_and_replays_it(tmp_path: Path) -> None:
    asked = [Message("user", "Say something.")]
    recorder = RecordingModel(
        ScriptedModel([reply("first"), reply("second")]), directory=tmp_path, task=TASK
    )
    assert chat(recorder, asked).message.content == "first"
    assert chat(recorder, asked).message.content == "second"  # the caller gets the provider's
    path = recorder.save()

    [entry] = json.loads(path.read_text(encoding="utf-8"))["entries"]
    assert (entry["step"], entry["response"]["content"]) == (0, "first")

    replay = replayer(tmp_path)
    assert [chat(replay, asked).message.content for _ in range(3)] == ["first"] * 3
    assert replay.steps == 3
    assert replay.misses == []


def numbered_script(task: str) -> ScriptedModel:
    """Answers that say which task they belong to."""
    return ScriptedModel(
        [
            reply(f"{task} reads", tool_call("get_ticket", "call_1", ticket_id="T")),
            reply(f"{task} done"),
        ]
    )


def test_replay_does_not_depend_on_the_order_of_tasks(tmp_path: Path) -> None:
    tasks = {"support/a": "Handle T-1.", "support/b": "Handle T-2.", "other/a": "Handle T-3."}
    recorded = {}
    for task, user in tasks.items():
        recorder = RecordingModel(numbered_script(task), directory=tmp_path, task=task)
        recorded[task] = [response_to_dict(r) for r in conversation(recorder, user)]
        recorder.save()

    for order in (list(tasks), list(reversed(tasks))):
        for task in order:
            replayed = conversation(replayer(tmp_path, task=task), tasks[task])
            assert [response_to_dict(r) for r in replayed] == recorded[task]
    # The same request is not answered from another task's cassette.
    with pytest.raises(CassetteMissing):
        conversation(replayer(tmp_path, task="support/b"), tasks["support/a"])


def test_a_response_json_cannot_hold_is_refused_when_recorded(tmp_path: Path) -> None:
    recorder = RecordingModel(
        ScriptedModel([reply("", tool_call("refund", amount=object()))]),
        directory=tmp_path,
        task=TASK,
    )
    with pytest.raises(ValueError, match="cannot be recorded as JSON"):
        chat(recorder, [Message("user", "hi")])


def test_the_agent_loop_replays_a_recorded_run_and_a_miss_is_visible(tmp_path: Path) -> None:
    alice = Principal("alice", "acme", roles=("support",))

    def run(model: Model, home: str, request: str = "Please handle ticket T-1001.") -> Any:
        with make_runtime(tmp_path / home) as runtime:
            return asyncio.run(
                runtime.run_agent(
                    example_charter(),
                    model,
                    request,
                    principal=alice,
                    resources=(SupportDesk.default(),),
                )
            )

    cassettes = tmp_path / "cassettes"
    recorder = RecordingModel(
        ScriptedModel(
            [reply("Reading.", tool_call("get_ticket", ticket_id="T-1001")), reply("All done.")]
        ),
        directory=cassettes,
        task="support/t-1001",
    )
    recorded = run(recorder, "recording")
    recorder.save()
    replay = ReplayModel(
        directory=cassettes, task="support/t-1001", provider="openai", name="gpt-4o-mini"
    )
    replayed = run(replay, "replay")

    assert recorded.outcome == replayed.outcome == "succeeded"
    assert replayed.final_text == "All done."
    assert replayed.messages == recorded.messages
    assert replayed.total_tokens == recorded.total_tokens
    assert replay.misses == []

    # A different user request: the loop turns the miss into a failed run, misses tells.
    other = ReplayModel(
        directory=cassettes, task="support/t-1001", provider="openai", name="gpt-4o-mini"
    )
    failed = run(other, "changed", "Please handle ticket T-1002.")
    assert failed.outcome == "failed"
    assert "CassetteMissing" in failed.reason
    assert len(other.misses) == 1
    assert "step 1" in other.misses[0]
