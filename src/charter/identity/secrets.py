"""Credentials: resolved at call time, handed to the tool, never to the model, never logged.

A ``Secret`` hides its value from ``repr``/``str``/f-strings. Every resolved value is also
registered with a ``Redactor`` so it is scrubbed from anything that flows into the audit log,
traces, error text or the model's view, even if a tool echoes it back or the user types it.

What redaction catches (``identity/redaction.py`` says how): a registered value anywhere in a
text, in any letter case; its hex, URL (percent) and JSON-escaped forms; its base64 forms
(standard or URL-safe, padded or not, alone or inside a longer base64 string at any offset);
a value split across adjacent strings of one list, tuple or dict (its values, in order). The
agent loop redacts the user's input before anything sees it, and every message again before
the model does (``execution/agent.py``), so tool results, refusals, approvers' reasons and
error texts all pass through it.

What it cannot catch, by design (it looks for known values, it does not understand text):

- a value it was never given: a credential a tool computes, fetches or derives and returns,
  a credential the charter does not declare, a secret a user types that is not one of the
  run's credentials;
- any other transformation: reversed, ROT13, encrypted or hashed, base32/base85, double
  encodings (base64 of hex), compressed, mixed partial percent-encoding, spaced out or
  spelled out, translated or paraphrased by a model;
- part of a value: a prefix, a suffix or a few characters (only the whole value is known),
  the encoding of a piece of it, a value cut by truncation before redaction saw it whole;
- a value split in any other way: across nested containers, across dict keys, across
  separate tool results or messages, or inside one string with text between the pieces;
- values shorter than 6 characters inside a longer text (they would match ordinary words):
  they are redacted only where a whole string is the value or one of its encodings;
- what is already gone: a value sent to a third party by the tool that was given it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn, Protocol

from charter.core.errors import SecretNotFound, UserError, env_var_for_secret
from charter.core.files import FileRefused, read_regular
from charter.identity.redaction import MIN_SUBSTRING, REDACTED, Forms, Needles

__all__ = [
    "MAX_SECRET_BYTES",
    "REDACTED",
    "ChainSecretProvider",
    "EnvSecretProvider",
    "FileSecretProvider",
    "Redactor",
    "Secret",
    "SecretProvider",
]

# The credential names a charter may use: a plain file name, never a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The largest credential file read: a PEM chain or a service account's JSON key is a few
#: kilobytes; more is not a credential (and each value is kept in several encoded forms for
#: redaction).
MAX_SECRET_BYTES = 65_536


class Secret:
    """A credential value that refuses to print itself."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value

    def reveal(self) -> str:
        """The raw value. Call it only where the credential is actually used."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.name!r}, {REDACTED!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> NoReturn:
        raise TypeError("Secret values cannot be pickled")


class SecretProvider(Protocol):
    """Looks credentials up by the name the charter gives them."""

    description: str

    def get(self, name: str) -> str | None:
        """The value, or None when this provider does not have it."""
        ...


class EnvSecretProvider:
    """Reads ``CHARTER_SECRET_<NAME>`` (name upper-cased, non-alphanumerics as ``_``)."""

    description = "environment (CHARTER_SECRET_*)"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = environ if environ is not None else os.environ

    def get(self, name: str) -> str | None:
        return self._environ.get(env_var_for_secret(name))


class FileSecretProvider:
    """Reads ``<directory>/<name>``: one file per credential, like Kubernetes or Docker secrets.

    Names are checked so a charter cannot read outside the directory; files readable by group
    or others are refused because the point of the directory is that only we can read it. A
    file is read the way the charter loader reads files (``core.files.read_regular``): a FIFO,
    a device or a directory at the name is refused without waiting, and a file over
    ``MAX_SECRET_BYTES`` unread. Symlinks are followed (Kubernetes mounts secrets so).
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.description = f"files in {directory}"

    def get(self, name: str) -> str | None:
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise UserError(f"credential name {name!r} is not a plain file name")
        path = self._directory / name
        what = f"secret file {str(path)!r}"
        data = read_regular(
            path,
            what=what,
            max_bytes=MAX_SECRET_BYTES,
            too_big_hint="a credential is at most a few kilobytes; check what the file holds",
            vet=lambda status: _exposed(status.st_mode, what),
        )
        if data is None:
            return None
        if isinstance(data, FileRefused):
            raise UserError(f"{data.message}; {data.hint}")
        try:
            return data.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise UserError(f"cannot read {what}: it is not UTF-8 text ({exc.reason})") from None


def _exposed(mode: int, what: str) -> FileRefused | None:
    """A refusal for a file group or others may use: only we should be able to read it."""
    if mode & 0o077:
        return FileRefused(
            f"{what} is readable by group or others", "run chmod 600 on it", "exposed"
        )
    return None


class ChainSecretProvider:
    """Asks each provider in turn; the first that has the credential wins."""

    def __init__(self, providers: Sequence[SecretProvider], redactor: Redactor) -> None:
        self._providers = tuple(providers)
        self._redactor = redactor
        self.description = " -> ".join(p.description for p in self._providers)

    def resolve(self, name: str) -> Secret:
        """Resolve ``name`` to a ``Secret``, registering its value for redaction."""
        for provider in self._providers:
            value = provider.get(name)
            # An empty value (``export CHARTER_SECRET_X=``, an empty file) is no credential:
            # fail closed here, where it is the operator's to fix, not inside the tool.
            if value is not None and value.strip():
                self._redactor.register(value)
                return Secret(name, value)
        raise SecretNotFound(name, [p.description for p in self._providers])


class Redactor:
    """Replaces every known secret value, in the forms listed above, with ``[REDACTED]``.

    Thread-safe: registering builds new search tables and swaps them in whole.
    """

    def __init__(self) -> None:
        self._forms: dict[str, Forms] = {}
        self._needles: Needles | None = None
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        """Know ``value`` from now on (a no-op for a value known already, or empty)."""
        if not value or value in self._forms:  # resolved again on every call: stay cheap
            return
        with self._lock:
            if value in self._forms:
                return
            forms = {**self._forms, value: Forms.of(value)}
            self._needles = Needles.build(
                (f for v, f in forms.items() if len(v) >= MIN_SUBSTRING),
                (f for v, f in forms.items() if len(v) < MIN_SUBSTRING),
            )
            self._forms = forms

    def redact_text(self, text: str) -> str:
        """``text`` with every known value (in any of its forms) replaced by the marker."""
        needles = self._needles
        return text if needles is None else needles.redact_text(text)

    def redact(self, value: object) -> object:
        """Redact strings anywhere inside a JSON-like value; Secrets become the marker.

        Lists, tuples and sets come back as lists. A value too deeply nested (or cyclic) to
        walk is not shown at all: it becomes the marker.
        """
        if isinstance(value, Secret):
            return REDACTED
        needles = self._needles
        if needles is None:
            return value
        try:
            return _redacted(value, needles)
        except RecursionError:
            return REDACTED


def _redacted(value: object, needles: Needles) -> object:
    if isinstance(value, str):
        return needles.redact_text(value)
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, dict):
        values = _redacted_items(list(value.values()), needles)
        return {
            needles.redact_text(k) if isinstance(k, str) else k: v
            for k, v in zip(value, values, strict=True)
        }
    if isinstance(value, list | tuple | set | frozenset):
        return _redacted_items(list(value), needles)
    return value


def _redacted_items(items: list[object], needles: Needles) -> list[object]:
    """Each item redacted; runs of adjacent strings together, so a value split across them
    is found (``Needles.redact_pieces``)."""
    out: list[object] = []
    strings: list[str] = []
    for item in items:
        if isinstance(item, str):
            strings.append(item)
            continue
        if strings:
            out.extend(_redacted_strings(strings, needles))
            strings = []
        out.append(_redacted(item, needles))
    if strings:
        out.extend(_redacted_strings(strings, needles))
    return out


def _redacted_strings(strings: list[str], needles: Needles) -> list[str]:
    if len(strings) == 1:
        return [needles.redact_text(strings[0])]
    return needles.redact_pieces(strings)
