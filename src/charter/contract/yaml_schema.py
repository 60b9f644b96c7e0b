"""Pydantic validation errors as ``file:line`` problems, for every YAML file Charter reads.

The charter file and eval suites are validated by pydantic models; an operator fixing one
wants each error at its line with a hint, not pydantic's location tuples.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from charter.contract.yaml_source import YamlDocument
from charter.core.errors import Problem

__all__ = ["plain", "schema_problems"]


def plain(value: Any) -> Any:
    """ruamel's round-trip containers as plain dicts/lists, so pydantic sees ordinary data."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float):
        # Amounts such as 0.60 must reach Decimal fields exactly, not via binary floats; a
        # Decimal (not text) so a text field still refuses a number.
        return Decimal(repr(value)) if value == value else value
    if isinstance(value, str):
        return str(value)  # ruamel's scalar string subclasses as plain str
    return value


def schema_problems(
    doc: YamlDocument, exc: ValidationError, root: type[BaseModel], *, guide: str
) -> list[Problem]:
    """Each validation error of ``root`` as ``file:line: what; how to fix``.

    ``guide`` is the document a hint points to when no better hint is known.
    """
    problems: list[Problem] = []
    merged: dict[tuple[int, str], int] = {}  # (line, field) -> index in problems
    for error in exc.errors(include_url=False):
        kind = error["type"]
        loc = _data_loc(doc.data, tuple(error["loc"]), keep_last=kind == "missing")
        field = ".".join(str(part) for part in loc) or "(top level)"
        if kind == "extra_forbidden":
            parent = loc[:-1]
            allowed = _allowed_keys(root, parent)
            problems.append(
                doc.problem(
                    loc,
                    f"unknown key {loc[-1]!r}"
                    + (f" in {'.'.join(map(str, parent))}" if parent else ""),
                    f"remove it or check the spelling (allowed: {allowed})"
                    if allowed
                    else "remove it",
                )
            )
        elif kind == "missing":
            problems.append(
                doc.problem(loc[:-1], f"missing required key {field!r}", f"add {loc[-1]}: ...")
            )
        else:
            message = error["msg"].removeprefix("Value error, ")
            problem = doc.problem(loc, f"{field}: {message}", _hint_for(kind, guide))
            key = (problem.line, field)
            if key in merged:  # one value that fits none of a union's options
                index = merged[key]
                problems[index] = replace(
                    problems[index], message=f"{problems[index].message} (or: {message})"
                )
                continue
            merged[key] = len(problems)
            problems.append(problem)
    return sorted(problems, key=lambda p: p.line)


def _data_loc(data: Any, loc: tuple[Any, ...], *, keep_last: bool) -> tuple[Any, ...]:
    """``loc`` without pydantic's union branch names (``str``, ``SinkSpec``...), which are
    not keys of the file: only keys the data has are kept, and a missing key at the end."""
    kept: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        in_map = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_map or in_list:
            node = node[part]
        elif not (keep_last and index == len(loc) - 1):
            continue
        kept.append(part)
    return tuple(kept)


def _hint_for(kind: str, guide: str) -> str:
    hints = {
        "string_pattern_mismatch": "use the allowed characters shown",
        "literal_error": "use one of the listed values",
        "int_parsing": "write a whole number",
        "int_type": "write a whole number",
        "decimal_parsing": "write a number such as 0.60",
        "float_parsing": "write a number",
        "bool_parsing": "write true or false",
        "dict_type": "write a mapping (key: value)",
        "list_type": "write a list (- item)",
        "string_type": "write text",
        "too_short": "add at least one entry",
        "greater_than": "use a larger value",
        "greater_than_equal": "use a larger value",
        "less_than_equal": "use a smaller value",
    }
    return hints.get(kind, f"see {guide}")


def _allowed_keys(root: type[BaseModel], parent: tuple[Any, ...]) -> str:
    """The keys allowed at ``parent`` in the ``root`` schema, for "did you mean" hints."""
    annotation: Any = root
    for part in parent:
        annotation = _step(annotation, part)
        if annotation is None:
            return ""
    model = _unwrap_model(annotation)
    if model is None:
        return ""
    return ", ".join(f.alias or name for name, f in model.model_fields.items())


def _step(annotation: Any, part: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _step(get_args(annotation)[0], part)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, field in annotation.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    if origin is dict:
        return get_args(annotation)[1]
    if origin is list:
        return get_args(annotation)[0]
    for option in get_args(annotation):  # a union: the first branch the location fits
        found = _step(option, part)
        if found is not None:
            return found
    return None


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for option in get_args(annotation):
        found = _unwrap_model(option)
        if found is not None:
            return found
    return None
