"""Credentials: resolved at call time, handed to tools as ``Secret``, never leaked anywhere.

The leak test sets the payments credential to a distinctive value, makes tools echo it back
in results, errors and arguments, and then greps everything a person or a model can see: the
model's messages, every audit column (read with plain sqlite3), the database files' bytes,
and every exported span.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from charter_examples.support_desk.desk import SupportDesk

from charter.contract.tool import ToolContext, tool
from charter.core.errors import SecretNotFound, UserError, env_var_for_secret
from charter.identity.principal import Principal
from charter.identity.secrets import (
    REDACTED,
    ChainSecretProvider,
    EnvSecretProvider,
    FileSecretProvider,
    Redactor,
    Secret,
)
from charter.testing import ScriptedModel, reply, tool_call
from tests.execution.harness import SECRET, Traced, audit_rows, write_charter

# -- Secret ----------------------------------------------------------------------------------


def test_secret_hides_its_value_from_every_kind_of_printing() -> None:
    secret = Secret("payments-refund", SECRET)
    renderings = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!s}",
        f"{secret!r}",
        f"{secret:>40}",
        f"{secret}",
        "%s %r" % (secret, secret),  # noqa: UP031 - old-style formatting must hide it too
        str([secret]),
        repr({"credential": secret}),
    ]
    for text in renderings:
        assert SECRET not in text
        assert REDACTED in text
    assert secret.reveal() == SECRET
    assert secret.name == "payments-refund"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_secret_refuses_pickling(protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("payments-refund", SECRET), protocol=protocol)


def test_secret_refuses_copying_through_the_pickle_protocol() -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        copy.copy(Secret("payments-refund", SECRET))


def test_secret_has_no_dict_to_dump() -> None:
    secret = Secret("payments-refund", SECRET)
    assert not hasattr(secret, "__dict__")
    with pytest.raises(TypeError):
        json.dumps(secret)


# -- providers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "variable"),
    [
        ("payments-refund", "CHARTER_SECRET_PAYMENTS_REFUND"),
        ("crm.api_key", "CHARTER_SECRET_CRM_API_KEY"),
        ("A1", "CHARTER_SECRET_A1"),
    ],
)
def test_env_provider_reads_charter_secret_variables(name: str, variable: str) -> None:
    assert env_var_for_secret(name) == variable
    assert EnvSecretProvider({variable: "v"}).get(name) == "v"
    assert EnvSecretProvider({}).get(name) is None
    assert EnvSecretProvider({name: "v"}).get(name) is None  # the raw name is not read


def write_secret(directory: Path, name: str, value: str, mode: int = 0o600) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(value, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_file_provider_reads_an_owner_only_file_without_its_newline(tmp_path: Path) -> None:
    write_secret(tmp_path, "payments-refund", SECRET + "\n")
    provider = FileSecretProvider(tmp_path)
    assert provider.get("payments-refund") == SECRET
    assert provider.get("absent") is None


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o620, 0o700 | 0o010])
def test_file_provider_refuses_files_others_can_use(tmp_path: Path, mode: int) -> None:
    write_secret(tmp_path, "payments-refund", SECRET, mode)
    with pytest.raises(UserError, match="chmod 600") as raised:
        FileSecretProvider(tmp_path).get("payments-refund")
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    "name",
    ["../x", "..", ".", ".hidden", "a/b", "a\\b", "/etc/passwd", "", "x\x00y", "~root", "x\n"],
    ids=repr,
)
def test_file_provider_refuses_names_that_are_not_plain_file_names(
    tmp_path: Path, name: str
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    write_secret(tmp_path, "x", "outside")  # what ../x would reach
    with pytest.raises(UserError, match="not a plain file name"):
        FileSecretProvider(secrets).get(name)


def test_file_provider_reports_an_unreadable_file_clearly(tmp_path: Path) -> None:
    path = write_secret(tmp_path, "binary", "")
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="cannot read secret file"):
        FileSecretProvider(tmp_path).get("binary")


def test_chain_uses_the_first_provider_that_has_the_credential_and_registers_it() -> None:
    redactor = Redactor()
    chain = ChainSecretProvider(
        [
            EnvSecretProvider({}),
            EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET}),
            EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": "second"}),
        ],
        redactor,
    )
    secret = chain.resolve("payments-refund")
    assert secret.reveal() == SECRET
    assert redactor.redact_text(f"token={SECRET};") == f"token={REDACTED};"


def test_chain_names_where_it_looked_and_what_to_set_when_missing(tmp_path: Path) -> None:
    chain = ChainSecretProvider([EnvSecretProvider({}), FileSecretProvider(tmp_path)], Redactor())
    with pytest.raises(SecretNotFound) as raised:
        chain.resolve("payments-refund")
    message = str(raised.value)
    assert "'payments-refund' was not found" in message
    assert "environment (CHARTER_SECRET_*)" in message
    assert f"files in {tmp_path}" in message
    assert "CHARTER_SECRET_PAYMENTS_REFUND" in message
    assert raised.value.code == "secret_not_found"


# -- Redactor --------------------------------------------------------------------------------


def test_redactor_scrubs_secrets_anywhere_in_json_like_values() -> None:
    redactor = Redactor()
    redactor.register(SECRET)
    value = {
        "text": f"Bearer {SECRET}",
        SECRET: [1, (f"x{SECRET}x",), {"deep": {SECRET}}],
        "secret": Secret("n", SECRET),
    }
    assert SECRET not in repr(redactor.redact(value))


def test_short_secrets_are_redacted_only_as_whole_strings() -> None:
    redactor = Redactor()
    redactor.register("abc")
    assert redactor.redact_text("abc") == REDACTED
    assert redactor.redact_text("abcdef") == "abcdef"  # would wreck ordinary words


def test_nothing_registered_means_values_pass_untouched() -> None:
    value = {"a": ["b"]}
    assert Redactor().redact(value) is value


# -- end to end: the value never leaves the tool -------------------------------------------


@tool
def echo_credential(*, ctx: ToolContext) -> dict[str, Any]:
    """Returns its credential in every shape it can."""
    assert ctx.credential is not None
    value = ctx.credential.reveal()
    return {"token": value, value: "as a key", "nested": [f"Bearer {value}"], "obj": ctx.credential}


@tool
def fail_with_credential(*, ctx: ToolContext) -> str:
    """Raises with its credential in the message."""
    assert ctx.credential is not None
    raise PermissionError(f"401 for token {ctx.credential.reveal()}")


@tool
def take_note(note: str) -> str:
    """Stores a note.

    Args:
        note: the text.
    """
    return f"stored: {note}"


def test_the_credential_never_reaches_model_audit_or_traces(traced: Traced, tmp_path: Path) -> None:
    runtime = traced.runtime
    charter = write_charter(
        tmp_path,
        """\
        toolkit: [charter_examples.support_desk.tools]
        tools:
          issue_refund: {effect: irreversible, credential: payments-refund}
          echo_credential: {effect: read, credential: payments-refund}
          fail_with_credential: {effect: write, credential: payments-refund}
          take_note: {effect: write}
        policies: {on_deny: continue}
        """,
        tools=[echo_credential, fail_with_credential, take_note],
    )
    refund = {"ticket_id": "T-1001", "amount_usd": "45", "account": "acct-C-01"}
    model = ScriptedModel(
        [
            reply("", tool_call("echo_credential", "c1")),
            reply("", tool_call("fail_with_credential", "c2")),
            reply("", tool_call("issue_refund", "c3", **refund)),
            # A model that saw the value somewhere would echo it back in arguments.
            reply("", tool_call("take_note", "c4", note=f"the key is {SECRET}")),
            reply("", tool_call("take_note", "c5", note=SECRET, extra=SECRET)),
            reply("", tool_call("take_note", "c6", note="x", **{SECRET: 1})),
            reply("", tool_call(f"tool_{SECRET}", "c7")),
            reply("done"),
        ]
    )

    result = asyncio.run(
        runtime.run_agent(
            charter,
            model,
            "Do the thing.",
            principal=Principal("alice", "acme"),
            resources=(SupportDesk.default(),),
        )
    )

    assert result.outcome == "succeeded"
    assert [c.outcome for c in result.tool_calls] == [
        "executed",
        "error",
        "executed",
        "executed",
        "denied",
        "denied",
        "denied",
    ]
    # What the model saw, turn by turn, and what the host gets back as data.
    seen_by_model = json.dumps(
        [[m.content for m in turn] for turn in model.calls] + [m.content for m in result.messages]
    )
    assert SECRET not in seen_by_model
    assert REDACTED in seen_by_model
    assert SECRET not in json.dumps(result.as_dict())
    # Every audit column of every row, read as an auditor would.
    rows = audit_rows(runtime)
    assert len(rows) == 9  # run_started, seven tool calls, run_finished
    for row in rows:
        for column, value in row.items():
            assert SECRET not in str(value), column
    # The bytes of every file under the runtime's home (database, WAL, journal).
    runtime.audit.close()
    for path in runtime.settings.home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    # Every exported span: names, attributes, status, events.
    spans = traced.spans()
    assert len(spans) >= 1 + 7 + 8  # invoke_agent, the tool calls, the chats
    for span in spans:
        exported = span.to_json()
        assert SECRET not in exported, span.name
