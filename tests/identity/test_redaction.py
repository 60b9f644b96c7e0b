"""Redaction of known credentials in the forms they commonly take, on every path to the model.

The unit tests feed the ``Redactor`` each encoding (base64 in both alphabets, padded or not,
alone or at every offset of a longer string; hex; percent-encoding; letter case; JSON escapes;
a value split across adjacent strings) and text that must stay as it is. The end-to-end tests
make tools return the credential transformed, raise with it, and a user type it, then check
what the model saw, the audit log, the database files and the spans. The oracle is
independent of the redactor: every base64-looking token that is left is decoded at every
offset and searched for the credential's bytes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.cli.render import print_run
from charter.contract.tool import ToolContext, tool
from charter.core.canonical import sha256_hex
from charter.core.settings import Settings
from charter.execution.agent import RunResult, run_agent
from charter.execution.approvals import ApprovalRequest, InMemoryGrants
from charter.execution.kill_switch import KillSwitches
from charter.execution.model import Message
from charter.execution.run import Run
from charter.execution.steps import ApprovalOutcome, InProcessSteps
from charter.identity.principal import Principal
from charter.identity.secrets import REDACTED, EnvSecretProvider, Redactor, Secret
from charter.runtime import Runtime
from charter.testing import FakeClock, ScriptedModel, reply, tool_call
from tests.execution.harness import SECRET, audit_rows, example_charter, write_charter

RAW = SECRET.encode()
OTHER = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"


@pytest.fixture
def redactor() -> Redactor:
    redactor = Redactor()
    redactor.register(SECRET)
    return redactor


def b64(data: bytes, *, url: bool = False, pad: bool = True) -> str:
    text = (base64.urlsafe_b64encode if url else base64.b64encode)(data).decode()
    return text if pad else text.rstrip("=")


def holds_credential(text: str, secret: str = SECRET) -> str | None:
    """Which form of ``secret`` ``text`` still holds, found without the redactor's help."""
    raw = secret.encode()
    folded = text.casefold()
    plain = {
        "raw": secret,
        "hex": raw.hex(),
        "percent": urllib.parse.quote(secret, safe=""),
        "every byte percent-encoded": "".join(f"%{b:02x}" for b in raw),
    }
    for name, form in plain.items():
        if form.casefold() in folded:
            return name
    for token in re.findall(r"[A-Za-z0-9+/_-]{8,}", text):
        for skip in range(4):  # a base64 string may start mid-quantum
            chunk = token[skip:]
            chunk = chunk[: len(chunk) - (len(chunk) % 4 == 1)]
            chunk += "=" * (-len(chunk) % 4)
            for alphabet in (None, b"-_"):
                try:
                    decoded = base64.b64decode(chunk, altchars=alphabet, validate=False)
                except (binascii.Error, ValueError):
                    continue
                if raw in decoded:
                    return f"base64 at {skip}"
    return None


# -- each form --------------------------------------------------------------------------------

FORMS = {
    "upper case": SECRET.upper(),
    "lower case": SECRET.lower(),
    "swapped case": SECRET.swapcase(),
    "base64": b64(RAW),
    "base64 unpadded": b64(RAW, pad=False),
    "base64 url-safe": b64(RAW, url=True),
    "base64 url-safe unpadded": b64(RAW, url=True, pad=False),
    "hex": RAW.hex(),
    "hex upper case": RAW.hex().upper(),
    "percent, every byte": "".join(f"%{b:02X}" for b in RAW),
    "percent, every byte, lower case": "".join(f"%{b:02x}" for b in RAW),
    "basic auth": "Basic " + b64(b"api:" + RAW),
    "JSON-escaped in a JSON text": json.dumps({"key": SECRET}),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_each_common_form_is_redacted(redactor: Redactor, form: str) -> None:
    text = f"the upstream said: {form} (retry later)"
    assert holds_credential(text) is not None  # the oracle sees it before

    redacted = redactor.redact_text(text)

    assert holds_credential(redacted) is None, redacted
    assert REDACTED in redacted
    assert redacted.startswith("the upstream said: ")
    assert redacted.endswith(" (retry later)")


@pytest.mark.parametrize("before", range(6))
@pytest.mark.parametrize("after", range(3))
@pytest.mark.parametrize("url", [False, True])
def test_base64_of_a_longer_text_is_redacted_at_every_offset(
    redactor: Redactor, before: int, after: int, url: bool
) -> None:
    data = b"user="[:before] + RAW + b"&x=1"[:after]
    text = f"payload {b64(data, url=url)} end"

    redacted = redactor.redact_text(text)

    assert holds_credential(redacted) is None, redacted
    assert redacted == f"payload {REDACTED} end"  # the whole base64 string goes


def test_percent_encodings_of_a_value_with_reserved_characters() -> None:
    secret = "p@ss/w0rd+key=1 2"
    redactor = Redactor()
    redactor.register(secret)
    for form in (
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote(secret, safe="").lower(),
    ):
        assert redactor.redact_text(f"?token={form}&a=1") == f"?token={REDACTED}&a=1", form


def test_json_escapes_of_a_value_with_quotes_and_non_ascii() -> None:
    secret = 'k"ey\\é-0123'
    redactor = Redactor()
    redactor.register(secret)
    for text in (json.dumps({"k": secret}), json.dumps({"k": secret}, ensure_ascii=False)):
        assert redactor.redact_text(text) == f'{{"k": "{REDACTED}"}}', text


def test_a_value_split_across_adjacent_strings_is_redacted(redactor: Redactor) -> None:
    halves = [SECRET[:12], SECRET[12:]]
    thirds = [SECRET[:5], SECRET[5:15], SECRET[15:]]
    encoded = b64(RAW)

    assert redactor.redact(halves) == [REDACTED, REDACTED]
    assert redactor.redact(["keep", *thirds, "keep too"]) == ["keep", *[REDACTED] * 3, "keep too"]
    assert redactor.redact(tuple(halves)) == [REDACTED, REDACTED]
    assert redactor.redact({"a": halves[0], "b": halves[1], "n": 1}) == {
        "a": REDACTED,
        "b": REDACTED,
        "n": 1,
    }
    assert redactor.redact([encoded[:10], encoded[10:]]) == [REDACTED, REDACTED]
    assert redactor.redact({"nested": [f"x {halves[0]}", halves[1]]}) == {
        "nested": [REDACTED, REDACTED]
    }
    # A whole value inside one piece is redacted within it; its neighbours stay.
    assert redactor.redact(["a", f"key {SECRET}!", "b"]) == ["a", f"key {REDACTED}!", "b"]


def test_what_splitting_does_not_join(redactor: Redactor) -> None:
    halves = [SECRET[:12], SECRET[12:]]
    # Not adjacent strings of one container: documented as not caught.
    assert redactor.redact([halves[0], 1, halves[1]]) == [halves[0], 1, halves[1]]
    assert redactor.redact([[halves[0]], [halves[1]]]) == [[halves[0]], [halves[1]]]
    assert redactor.redact_text(f"{halves[0]} {halves[1]}") == f"{halves[0]} {halves[1]}"


# -- what must stay --------------------------------------------------------------------------

ORDINARY = [
    "Please refund order 1001; the customer was charged twice.",
    "sk_live_ is how live keys start; pay_7Qx9 is a prefix of nothing",
    "Skill, SKY, skimming, live, pay, LIVE PAY",
    b64(b"an unrelated payload of bytes"),
    b"other bytes entirely".hex(),
    urllib.parse.quote("a/b c?d=e&f", safe=""),
    SECRET[:-1],  # one character short is not the credential
    SECRET[1:],
    "%73%6b%5f",  # the first bytes, percent-encoded
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_text_and_parts_of_a_value_stay(redactor: Redactor, text: str) -> None:
    assert redactor.redact_text(text) == text
    assert redactor.redact([text, "next"]) == [text, "next"]


def test_short_secrets_are_redacted_only_as_whole_strings_in_any_form() -> None:
    redactor = Redactor()
    redactor.register("ab1Z")
    for whole in (
        "ab1Z",
        "AB1Z",
        "ab1z",
        b64(b"ab1Z"),
        b64(b"ab1Z", pad=False),
        "6162315a",
        "%61%62%31%5A",
    ):
        assert redactor.redact_text(whole) == REDACTED, whole
        assert redactor.redact([whole]) == [REDACTED], whole
    for text in ("ab1Zx", "lab1Z", "the ab1Z here", "ab", "YWIxWg==x"):
        assert redactor.redact_text(text) == text, text
    # Short pieces are not joined: "ab" + "1Z" would match far too much ordinary text.
    assert redactor.redact(["ab", "1Z"]) == ["ab", "1Z"]


def test_overlapping_secrets_are_redacted_as_one_span_with_no_tail() -> None:
    first, second = "abcdef123456", "123456ghijkl"
    redactor = Redactor()
    redactor.register(first)
    redactor.register(second)
    assert redactor.redact_text("x abcdef123456ghijkl y") == f"x {REDACTED} y"
    redactor.register("abcdef123456ghijklmnop")  # one value a prefix of another
    assert redactor.redact_text("<abcdef123456ghijklmnop>") == f"<{REDACTED}>"


def test_two_credentials_side_by_side_and_repeated(redactor: Redactor) -> None:
    redactor.register(OTHER)
    text = f"{SECRET}{OTHER} and again {SECRET.upper()}, {b64(OTHER.encode())}"
    assert redactor.redact_text(text) == f"{REDACTED} and again {REDACTED}, {REDACTED}"


def test_a_text_made_of_one_credential_repeated_finishes_redacted() -> None:
    redactor = Redactor()
    redactor.register("aaaaaaaa")
    text = "a" * 200_000
    assert redactor.redact_text(text) == REDACTED  # too many hits: the whole text goes


def test_offsets_survive_a_character_that_lowers_to_two() -> None:
    redactor = Redactor()
    redactor.register(SECRET)
    text = f"\u0130stanbul {SECRET.upper()} \u0130"
    assert redactor.redact_text(text) == f"\u0130stanbul {REDACTED} \u0130"


def test_values_too_deep_or_cyclic_to_walk_are_not_shown(redactor: Redactor) -> None:
    deep: list[Any] = ["x"]
    for _ in range(5000):
        deep = [deep]
    cyclic: list[Any] = ["x"]
    cyclic.append(cyclic)
    assert redactor.redact(deep) == REDACTED
    assert redactor.redact(cyclic) == REDACTED


def test_secrets_keys_and_registration(redactor: Redactor) -> None:
    assert redactor.redact({SECRET.upper(): 1, "s": Secret("n", "v")}) == {
        REDACTED: 1,
        "s": REDACTED,
    }
    before = redactor.redact_text(f"k {SECRET}")
    for _ in range(3):
        redactor.register(SECRET)  # resolved on every call: registering again changes nothing
    redactor.register("")
    assert redactor.redact_text(f"k {SECRET}") == before == f"k {REDACTED}"


# -- every path to the model, end to end ------------------------------------------------------

LEAKS: dict[str, Any] = {
    "base64": lambda v: {"token": b64(v.encode())},
    "upper": lambda v: {"token": v.upper()},
    "split list": lambda v: {"parts": [v[:10], v[10:]]},
    "split values": lambda v: {"first": v[:14], "second": v[14:]},
    "hex": lambda v: f"debug dump: {v.encode().hex()}",
    "url": lambda v: {"callback": "https://x.test/cb?key=" + urllib.parse.quote(v, safe="")},
    "basic auth": lambda v: {"headers": {"Authorization": "Basic " + b64(b"api:" + v.encode())}},
}


@tool
def leak(form: str, *, ctx: ToolContext) -> Any:
    """Returns its credential transformed.

    Args:
        form: which transformation.
    """
    assert ctx.credential is not None
    return LEAKS[form](ctx.credential.reveal())


@tool
def fail_encoded(*, ctx: ToolContext) -> str:
    """Raises with its credential base64-encoded in the message."""
    assert ctx.credential is not None
    raise PermissionError(f"401 for token {b64(ctx.credential.reveal().encode(), url=True)}")


@tool
def note(text: str) -> str:
    """Stores a note.

    Args:
        text: the note.
    """
    return f"stored: {text}"


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime that records message content on spans (the most there is to leak)."""
    settings = Settings(
        home=tmp_path / "home", secrets_dir=tmp_path / "secrets", trace_content=True
    )
    with Runtime(
        settings,
        clock=FakeClock(),
        kill_switches=KillSwitches(),
        approvals=InMemoryGrants(),
        secret_providers=[EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET})],
    ) as runtime:
        yield runtime


def assert_nowhere(runtime: Runtime, model: ScriptedModel, result: RunResult) -> None:
    """The credential, in no form, in what the model saw, the result, the audit, the files."""
    for number, turn in enumerate(model.calls, 1):
        seen = json.dumps([_message(m) for m in turn])
        assert holds_credential(seen) is None, (number, seen)
    assert holds_credential(json.dumps(result.as_dict())) is None
    assert holds_credential(json.dumps([_message(m) for m in result.messages])) is None
    for row in audit_rows(runtime):
        for column, value in row.items():
            assert holds_credential(str(value)) is None, (column, value)
    runtime.flush_traces()
    runtime.audit.close()
    for path in runtime.settings.home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for form in (RAW, SECRET.upper().encode(), b64(RAW).encode(), RAW.hex().encode()):
                assert form not in data, (path, form)


def _message(message: Message) -> dict[str, Any]:
    return {
        "content": message.content,
        "calls": [[c.id, c.name, c.arguments] for c in message.tool_calls],
    }


def test_transformed_credentials_in_tool_results_and_errors_never_reach_the_model(
    home: Runtime, tmp_path: Path
) -> None:
    charter = write_charter(
        tmp_path,
        """\
        tools:
          leak: {effect: read, credential: payments-refund}
          fail_encoded: {effect: read, credential: payments-refund}
          note: {effect: write}
        policies: {on_deny: continue}
        """,
        tools=[leak, fail_encoded, note],
    )
    calls = [reply("", tool_call("leak", f"c{i}", form=form)) for i, form in enumerate(LEAKS)]
    model = ScriptedModel(
        [
            *calls,
            reply("", tool_call("fail_encoded", "e1")),
            # A model that got the value elsewhere sends it back encoded, as an argument's name:
            # the refusal quotes the name.
            reply("", tool_call("note", "d1", text="x", **{b64(RAW, pad=False): 1})),
            reply("All done."),
        ]
    )

    result = asyncio.run(
        home.run_agent(charter, model, "Check the keys.", principal=Principal("alice", "acme"))
    )

    assert result.outcome == "succeeded"
    assert [c.outcome for c in result.tool_calls] == ["executed"] * len(LEAKS) + [
        "error",
        "denied",
    ]
    texts = [c.model_text for c in result.tool_calls]
    assert all(REDACTED in text for text in texts), texts
    assert_nowhere(home, model, result)


def test_a_credential_the_user_types_is_redacted_and_the_run_goes_on(
    home: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = f"My key is {SECRET}, or in capitals {SECRET.upper()}. Please handle T-1001."
    model = ScriptedModel(
        [reply("", tool_call("get_ticket", ticket_id="T-1001")), reply("Handled.")]
    )

    result = asyncio.run(
        home.run_agent(
            example_charter(),
            model,
            typed,
            principal=Principal("alice", "acme", roles=("support",)),
            resources=(SupportDesk.default(),),
        )
    )

    assert result.outcome == "succeeded"
    shown = f"My key is {REDACTED}, or in capitals {REDACTED}. Please handle T-1001."
    assert [m.content for m in model.calls[0] if m.role == "user"] == [shown]
    assert result.messages[1] == Message("user", shown)
    started = [r for r in audit_rows(home) if r["kind"] == "run_started"]
    assert [r["detail"] for r in started] == [f"input sha256 {sha256_hex(shown)}"]
    assert_nowhere(home, model, result)
    # The person who typed it is told, where they read the run's outcome.
    assert result.input_redacted
    print_run(result.as_dict())
    assert "note: your input held a credential this charter uses" in capsys.readouterr().out


def test_an_input_without_a_credential_is_left_as_it_is(home: Runtime) -> None:
    typed = "Please handle T-1001 (key rotation is due)."
    model = ScriptedModel([reply("Handled.")])
    result = asyncio.run(
        home.run_agent(example_charter(), model, typed, principal=Principal("alice", "acme"))
    )
    assert model.calls[0][1] == Message("user", typed)
    assert not result.input_redacted


class Rejects(InProcessSteps):
    """Steps that wait for approval and get a rejection whose reason quotes the credential."""

    can_wait = True

    async def await_approval(self, run: Run, request: ApprovalRequest) -> ApprovalOutcome | None:
        return ApprovalOutcome("reject", "bob", f"no, and stop using {b64(RAW)}")


def test_an_approvers_reason_reaches_the_model_and_the_audit_redacted(
    home: Runtime, tmp_path: Path
) -> None:
    charter = write_charter(
        tmp_path,
        """\
        toolkit: [charter_examples.support_desk.tools]
        tools:
          issue_refund: {effect: irreversible, credential: payments-refund}
        policies:
          on_deny: continue
          require_approval_for: [{action: issue_refund, any: true, reason: "a human decides"}]
        """,
    )
    refund = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    model = ScriptedModel(
        [reply("", tool_call("issue_refund", "r1", **refund)), reply("Could not refund.")]
    )
    run = home.start_run(charter, Principal("alice", "acme"), resources=(SupportDesk.default(),))

    result = asyncio.run(
        run_agent(run, model, "Refund T-1002.", price=home.price_for(charter), steps=Rejects())
    )

    assert result.outcome == "succeeded"
    told = model.calls[1][-1]
    assert told.role == "tool"
    assert (
        told.content == f"REJECTED: issue_refund was rejected by bob: no, and stop using {REDACTED}"
    )
    assert_nowhere(home, model, result)


def test_a_run_stopped_by_a_rejection_keeps_the_reason_redacted(home: Runtime) -> None:
    # The example charter stops on a denial: the approver's reason becomes the run's reason.
    refund = {"ticket_id": "T-1002", "amount_usd": "350", "account": "acct-C-02"}
    model = ScriptedModel([reply("", tool_call("issue_refund", "r1", **refund))])
    charter = example_charter()
    run = home.start_run(
        charter, Principal("alice", "acme", roles=("support",)), resources=(SupportDesk.default(),)
    )

    result = asyncio.run(
        run_agent(run, model, "Refund T-1002.", price=home.price_for(charter), steps=Rejects())
    )

    assert (result.outcome, result.reason) == (
        "denied",
        f"issue_refund was rejected by bob: no, and stop using {REDACTED}",
    )
    assert_nowhere(home, model, result)


def test_a_refused_reply_quoting_the_credential_is_reported_redacted(home: Runtime) -> None:
    class Echo:
        provider, name = "openai", "gpt-4o-mini"

        async def chat(
            self, messages: Sequence[Message], tools: Any, *, max_output_tokens: int
        ) -> Any:
            return SECRET  # not a ModelResponse; the reason quotes only its type

    result = asyncio.run(
        home.run_agent(example_charter(), Echo(), "hi", principal=Principal("alice", "acme"))
    )
    assert result.outcome == "failed"
    assert SECRET not in result.reason
    assert "returned of type str, not a ModelResponse" in result.reason
