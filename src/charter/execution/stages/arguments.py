"""Stage 3: arguments must match the tool's schema exactly, and be of a sane size.

Unknown, missing and wrongly typed arguments are refused (no coercion of "5" into 5), as are
oversized ones and text that is not valid UTF-8. Amounts must fit what policies can compare
(Cedar decimals: four places), so no value is rounded on its way to a decision.

Arguments are validated as the JSON they are (``ToolSpec.parse_arguments``): what a model
sent is JSON already, and values host code passes (a datetime, a pydantic model) are first
written as the JSON a model would send for them (``to_json_form``); anything that has no
such form is refused. The validated values' canonical JSON is what is hashed, approved,
audited and shown to policies; for a tool with other than plain JSON arguments it must read
back as the same values, or the call is refused: a record must say what the tool was given.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from charter.core.canonical import canonical_text, sha256_hex, to_json_form, to_jsonable
from charter.core.decision import Decision, Stage

if TYPE_CHECKING:
    from charter.contract.tool import ToolSpec
    from charter.execution.call import PendingCall
    from charter.execution.run import Run

_FOUR_PLACES = Decimal("0.0001")
_CEDAR_DECIMAL_LIMIT = Decimal("922337203685477")


class ArgumentsStage:
    stage = Stage.SCHEMA

    def check(self, run: Run, call: PendingCall) -> Decision | None:
        assert call.spec is not None  # the allowlist stage ran first
        rule = f"schema.{call.tool}"
        raw = call.raw_arguments
        if not isinstance(raw, dict):
            return self._deny(f"arguments must be a JSON object, not {type(raw).__name__}", rule)
        limit = run.charter.spec.policies.max_argument_bytes
        try:
            text = json.dumps(raw, default=_as_json, ensure_ascii=False)
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            return self._deny("arguments contain text that is not valid UTF-8", rule)
        except RecursionError:
            return self._deny("arguments are nested too deeply", rule)
        except (ValueError, TypeError) as exc:
            return self._deny(f"arguments are not JSON data: {exc}", rule)
        if size > limit:
            return self._deny(f"arguments are {size} bytes; the limit is {limit}", rule)
        spec = call.spec
        try:
            model = spec.parse_arguments(text)
        except ValidationError as exc:
            return self._deny(_describe(exc), rule)
        arguments = {name: getattr(model, name) for name in type(model).model_fields}
        problem = _amount_problem(arguments)
        if problem:
            return self._deny(problem, rule)
        try:
            # Plain JSON data needs only to_jsonable (the hot path: most tools).
            jsonable = (to_jsonable if spec.plain_arguments else to_json_form)(arguments)
            canonical = canonical_text(jsonable)
        except (ValueError, TypeError, RecursionError) as exc:
            # TypeError: a value with no JSON form (a type this code does not know).
            return self._deny(f"arguments cannot be canonicalized: {exc}", rule)
        if not spec.plain_arguments and not _reads_back(spec, canonical, model):
            return self._deny(
                "their JSON form does not read back as the same values (a custom "
                "serializer or validator changes them), so no record could say what the "
                f"tool was given; fix the types of {call.tool!r}",
                rule,
            )
        call.arguments = arguments
        call.canonical_arguments = jsonable
        call.arguments_sha256 = sha256_hex(canonical)
        return None

    def _deny(self, reason: str, rule: str) -> Decision:
        return Decision.deny(self.stage, f"invalid arguments: {reason}", rule)


def _as_json(value: Any) -> Any:
    """``json.dumps``'s fallback for a value host code passed: its JSON form, as a model
    would send it (a datetime's ISO text, a model's fields), or TypeError."""
    converted = to_json_form(value)
    if converted is value:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
    return converted


def _reads_back(spec: ToolSpec, canonical: str, model: BaseModel) -> bool:
    """Whether the canonical JSON validates back to the same values."""
    try:
        return spec.parse_arguments(canonical) == model
    except ValidationError:
        return False


def _describe(exc: ValidationError) -> str:
    parts: list[str] = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(arguments)"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown argument {where!r}")
        elif error["type"] == "missing":
            parts.append(f"missing argument {where!r}")
        else:
            parts.append(f"{where!r}: {error['msg']}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _amount_problem(arguments: dict[str, Any]) -> str | None:
    for name, value in arguments.items():
        if isinstance(value, list | tuple | set | frozenset):
            # Lists of whole numbers reach Cedar as sets of Longs: the same 64-bit bound.
            for item in value:
                if isinstance(item, int) and not isinstance(item, bool) and _over_64_bits(item):
                    return f"{name!r} holds a number that does not fit in 64 bits"
            continue
        if isinstance(value, float):
            value = Decimal(repr(value))
        if isinstance(value, Decimal):
            # Finite and in range first: quantize() raises on infinities and on values too
            # large for the decimal context (about 1E+24 and up).
            if not value.is_finite():
                return f"{name!r} must be a finite number"
            if abs(value) >= _CEDAR_DECIMAL_LIMIT:
                return f"{name!r} is too large"
            if value != value.quantize(_FOUR_PLACES):
                return f"{name!r} has more than 4 decimal places"
        elif isinstance(value, int) and not isinstance(value, bool) and _over_64_bits(value):
            return f"{name!r} does not fit in 64 bits"
    return None


def _over_64_bits(value: int) -> bool:
    return not -(2**63) <= value < 2**63
