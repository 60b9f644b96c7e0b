"""Record and replay model responses, so an evaluation runs offline and gives the same answer.

``RecordingModel`` wraps a real ``Model``, passes every call through and remembers what the
provider answered to which request; ``save()`` writes one cassette per task. ``ReplayModel``
answers the same requests from that cassette, without a provider. A request is identified by
``request_key``: the SHA-256 of the canonical JSON of everything the provider is sent.

A cassette is JSON (never pickle), one file per task at ``<dir>/<suite>/<task id>.json``::

    {"format": "charter.cassette", "version": 1, "task": "suite/task-id",
     "model": "provider:name",
     "entries": [{"key": "<sha256 hex>", "step": 0,
                  "request": {"messages": 3, "last_message": "<first 200 chars>"},
                  "response": <response_to_dict>}]}

``step`` is the 0-based index of the model call in the recorded task; ``request`` only
summarises the request so a human can see which one an entry answers (the key decides).

Cassettes hold model output as the provider sent it. Charter's redactor is *not* applied,
because replay must give back exactly what was recorded (a redacted answer would steer the
agent differently). Recording stores nothing the provider did not answer, but review
cassettes before committing them, as you would any model transcript.

A replay that cannot answer (no entry for the request, no cassette, a corrupt cassette) raises
``CassetteMissing``, a ``UserError`` whose message names the task and the file and says to
re-record. A corrupt file is reported with the same error on purpose: the remedy is the same
(re-record), and the eval runner has one condition to handle. Because the agent loop turns a
model exception into a failed run, every such message is also appended to
``ReplayModel.misses`` before raising: the runner checks it after each task and aborts the
evaluation instead of scoring a run that replay could not reproduce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from charter.core.canonical import canonical_json, sha256_hex
from charter.core.errors import CassetteMissing
from charter.core.files import FileRefused, read_regular, write_atomic
from charter.execution.model import (
    Message,
    Model,
    ModelResponse,
    message_to_dict,
    response_from_dict,
    response_to_dict,
)

__all__ = [
    "FORMAT",
    "MAX_CASSETTE_BYTES",
    "VERSION",
    "RecordingModel",
    "ReplayModel",
    "cassette_path",
    "request_key",
]

FORMAT = "charter.cassette"
VERSION = 1

_PART = re.compile(r"[a-z0-9][a-z0-9._-]*")
_KEY = re.compile(r"[0-9a-f]{64}")
_SUMMARY_CHARS = 200
_KEY_PREFIX = 12
_RERECORD = "re-record with `charter eval ... --record DIR`"
#: The largest cassette read: one task's model replies, far less as a rule.
MAX_CASSETTE_BYTES = 64 * 2**20

# Values a run makes up for itself that could reach the model's messages. An approval
# request id derives from the run id, which is random; its text only reaches the model when a
# durable run resumes after a decision, but a key must never depend on it.
_RUN_SPECIFIC = re.compile(r"\bapr_[0-9a-f]{32}\b")


def request_key(
    messages: Sequence[Message],
    tools: Sequence[dict[str, Any]],
    *,
    max_output_tokens: int,
    model: str,
) -> str:
    """The SHA-256 (hex) of the canonical JSON of one model request.

    The key covers the messages (as ``message_to_dict``), the tool specs in the order they
    are offered, ``max_output_tokens`` and ``model`` (``"provider:name"``): change any of
    them and the recorded answer no longer applies. Tool-call ids stay in: they come from
    the model's own (recorded) answers, so replay reproduces them exactly, and they tell
    which call a tool result answers. Approval request ids, which derive from the random run
    id, are masked. Raises ``ValueError`` for text canonical JSON refuses (lone surrogates).
    """
    payload = {
        "model": model,
        "max_output_tokens": max_output_tokens,
        "tools": list(tools),
        "messages": [_stable(message_to_dict(m)) for m in messages],
    }
    return sha256_hex(canonical_json(payload))


def cassette_path(directory: Path, task_key: str) -> Path:
    """Where the cassette of ``task_key`` (``"suite/task-id"``) lives under ``directory``.

    Each part must match ``[a-z0-9][a-z0-9._-]*``, so no key can leave ``directory``
    (``..``, absolute paths, separators and empty parts are refused with ``ValueError``).
    """
    parts = task_key.split("/")
    if len(parts) != 2 or not all(_PART.fullmatch(part) for part in parts):
        raise ValueError(
            f"invalid task key {task_key!r}: expected 'suite/task-id', each part matching "
            f"{_PART.pattern}"
        )
    suite, task = parts
    return directory / suite / f"{task}.json"


class RecordingModel:
    """Passes every call to ``inner`` and records the answers; ``save()`` writes the cassette.

    One instance per task. If the same request is asked twice in a task (a repeated trial,
    say), the first answer is kept for that key: a key must map to one answer, and the first
    one is the answer whose follow-up requests were recorded too, so replaying it never
    misses. The caller still gets the provider's new answer. Responses are checked to be
    plain JSON at the call (``ValueError`` otherwise), so ``save()`` cannot fail on content.
    """

    def __init__(self, inner: Model, *, directory: Path, task: str) -> None:
        self.inner = inner
        self.provider = inner.provider
        self.name = inner.name
        self.task = task
        self.path = cassette_path(directory, task)
        self.steps = 0
        self._entries: dict[str, dict[str, Any]] = {}

    @property
    def model(self) -> str:
        return f"{self.provider}:{self.name}"

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> ModelResponse:
        step = self.steps
        self.steps += 1
        key = request_key(messages, tools, max_output_tokens=max_output_tokens, model=self.model)
        response = await self.inner.chat(messages, tools, max_output_tokens=max_output_tokens)
        if key not in self._entries:
            self._entries[key] = {
                "key": key,
                "step": step,
                "request": _summary(messages),
                "response": _as_json(response),
            }
        return response

    def save(self) -> Path:
        """Write the cassette atomically (temp file in the same folder, then ``os.replace``).

        An existing cassette for the task is replaced, not merged.
        """
        document = {
            "format": FORMAT,
            "version": VERSION,
            "task": self.task,
            "model": self.model,
            "entries": sorted(self._entries.values(), key=lambda e: int(e["step"])),
        }
        text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        write_atomic(self.path, text)
        return self.path


class ReplayModel:
    """Answers model requests from a task's cassette; never calls a provider.

    The cassette is read on the first call. Each call counts as a step (1-based in
    messages). Answers are looked up by ``request_key`` only, so the same cassette and the
    same requests give the same answers whatever order tasks run in. A request that cannot be
    answered raises ``CassetteMissing``, after appending its message to ``misses``.
    """

    def __init__(self, *, directory: Path, task: str, provider: str, name: str) -> None:
        self.provider = provider
        self.name = name
        self.task = task
        self.path = cassette_path(directory, task)
        self.steps = 0
        self.misses: list[str] = []
        self._recorded_model = ""
        self._responses: dict[str, dict[str, Any]] | None = None

    @property
    def model(self) -> str:
        return f"{self.provider}:{self.name}"

    async def chat(
        self,
        messages: Sequence[Message],
        tools: Sequence[dict[str, Any]],
        *,
        max_output_tokens: int,
    ) -> ModelResponse:
        self.steps += 1
        step = self.steps
        try:
            responses = self._load()
        except CassetteMissing as error:
            self.misses.append(str(error))
            raise
        key = request_key(messages, tools, max_output_tokens=max_output_tokens, model=self.model)
        data = responses.get(key)
        if data is None:
            message = self._miss_message(step, key, len(responses))
            self.misses.append(message)
            raise CassetteMissing(message)
        return response_from_dict(data)

    def _miss_message(self, step: int, key: str, entries: int) -> str:
        why = "the task, its charter or prompt, its tools or the agent's behaviour changed"
        if self._recorded_model != self.model:
            why = (
                f"the cassette was recorded with model {self._recorded_model!r}, not {self.model!r}"
            )
        return (
            f"no recorded model response for task {self.task!r} at step {step} "
            f"(request {key[:_KEY_PREFIX]}): cassette {self.path} has {entries} "
            f"entr{'y' if entries == 1 else 'ies'}, none for this request ({why} since "
            f"recording); {_RERECORD}"
        )

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._responses is None:
            self._recorded_model, self._responses = _read(self.path, self.task)
        return self._responses


def _stable(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    if "apr_" in content:
        message = {**message, "content": _RUN_SPECIFIC.sub("apr_<run-specific>", content)}
    return message


def _summary(messages: Sequence[Message]) -> dict[str, Any]:
    last = messages[-1].content if messages else ""
    return {"messages": len(messages), "last_message": last[:_SUMMARY_CHARS]}


def _as_json(response: ModelResponse) -> dict[str, Any]:
    """The response as the JSON data replay will serve; refuses what JSON cannot hold."""
    try:
        text = json.dumps(response_to_dict(response), ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise ValueError(f"a model response cannot be recorded as JSON: {exc}") from exc
    data: dict[str, Any] = json.loads(text)
    return data


def _read(path: Path, task: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """The recorded model and the responses by key; ``CassetteMissing`` for any problem."""
    # Read without blocking and with a bound: the directory is the operator's to name, and a
    # named pipe there would hang the run, /dev/zero exhaust its memory.
    data = read_regular(
        path, what=f"the cassette of task {task!r} at {path}", max_bytes=MAX_CASSETTE_BYTES
    )
    if data is None:
        raise CassetteMissing(f"no cassette for task {task!r}: {path} does not exist; {_RERECORD}")
    if isinstance(data, FileRefused):
        raise CassetteMissing(f"{data.message}; {_RERECORD}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CassetteMissing(
            f"cannot read the cassette of task {task!r} at {path}: {exc}; {_RERECORD}"
        ) from exc

    def corrupt(what: str) -> CassetteMissing:
        return CassetteMissing(
            f"the cassette of task {task!r} at {path} is not usable: {what}; {_RERECORD}"
        )

    try:
        document = json.loads(text)
    except ValueError as exc:
        raise corrupt(f"invalid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise corrupt("the top level is not a JSON object")
    if document.get("format") != FORMAT:
        raise corrupt(f"format is {document.get('format')!r}, expected {FORMAT!r}")
    version = document.get("version")
    if type(version) is not int or version != VERSION:
        raise corrupt(f"version is {version!r}, this Charter reads version {VERSION}")
    if document.get("task") != task:
        raise corrupt(f"it was recorded for task {document.get('task')!r}")
    model = document.get("model")
    if not isinstance(model, str):
        raise corrupt("'model' is missing or not a string")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise corrupt("'entries' is missing or not a list")
    responses: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(entries):
        problem = _entry_problem(entry)
        if problem is None and entry["key"] in responses:
            problem = "its key appears in an earlier entry"
        if problem is not None:
            raise corrupt(f"entry {index}: {problem}")
        responses[entry["key"]] = entry["response"]
    return model, responses


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "not a JSON object"
    key = entry.get("key")
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        return "'key' is not a SHA-256 hex digest"
    step = entry.get("step")
    if type(step) is not int or step < 0:
        return "'step' is not a non-negative integer"
    if not isinstance(entry.get("request"), dict):
        return "'request' is not an object"
    return _response_problem(entry.get("response"))


def _response_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "'response' is not an object"
    if data.get("role") != "assistant":
        return "'response.role' is not 'assistant'"
    if not isinstance(data.get("content"), str):
        return "'response.content' is not a string"
    for field in ("tool_call_id", "name"):
        if field not in data or not (data[field] is None or isinstance(data[field], str)):
            return f"'response.{field}' is not a string or null"
    for field in ("input_tokens", "output_tokens"):
        value = data.get(field)
        if type(value) is not int or value < 0:
            return f"'response.{field}' is not a non-negative integer"
    calls = data.get("tool_calls")
    if not isinstance(calls, list):
        return "'response.tool_calls' is not a list"
    for call in calls:
        if not (
            isinstance(call, dict)
            and isinstance(call.get("id"), str)
            and isinstance(call.get("name"), str)
            and isinstance(call.get("arguments"), dict)
        ):
            return "a tool call is not {id: str, name: str, arguments: object}"
    return None
