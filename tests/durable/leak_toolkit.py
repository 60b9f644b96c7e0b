"""A tool that returns its credential transformed, and one whose error quotes it, with a
model that calls both: what a durable run then records must not hold the credential."""

from __future__ import annotations

import base64
import json
from typing import Any

from charter.contract.tool import ToolContext, tool
from charter.testing import ScriptedModel, reply, tool_call

FORMS: dict[str, Any] = {
    "raw": lambda v: {"token": v},
    "upper": lambda v: {"token": v.upper()},
    "base64": lambda v: {"token": base64.b64encode(v.encode()).decode()},
    "hex": lambda v: f"debug dump: {v.encode().hex()}",
    "json": lambda v: json.dumps({"nested": {"key": v}}),
    "split": lambda v: {"parts": [v[:8], v[8:]]},
}


@tool
def leak(form: str, *, ctx: ToolContext) -> Any:
    """Return the tool's credential in one form.

    Args:
        form: which form.
    """
    assert ctx.credential is not None
    return FORMS[form](ctx.credential.reveal())


@tool
def fail_loudly(*, ctx: ToolContext) -> str:
    """Fail with an error that quotes the credential."""
    assert ctx.credential is not None
    raise RuntimeError(f"upstream refused key {ctx.credential.reveal()}")


def model() -> ScriptedModel:
    return ScriptedModel(
        [
            *(reply("", tool_call("leak", f"c{i}", form=form)) for i, form in enumerate(FORMS)),
            reply("", tool_call("fail_loudly", "f1")),
            reply("Done."),
        ]
    )
