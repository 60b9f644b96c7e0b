"""Credentials: resolved at call time, handed to the tool, never to the model, never logged.

A ``Secret`` hides its value from ``repr``/``str``/f-strings. Every resolved value is also
registered with a ``Redactor`` so it is scrubbed from anything that flows into the audit log,
traces or error text, even if a tool echoes it back.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn, Protocol

from charter.core.errors import SecretNotFound, UserError, env_var_for_secret

__all__ = [
    "REDACTED",
    "ChainSecretProvider",
    "EnvSecretProvider",
    "FileSecretProvider",
    "Redactor",
    "Secret",
    "SecretProvider",
]

REDACTED = "[REDACTED]"

# The credential names a charter may use: a plain file name, never a path.
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


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
    or others are refused because the point of the directory is that only we can read it.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self.description = f"files in {directory}"

    def get(self, name: str) -> str | None:
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
            raise UserError(f"credential name {name!r} is not a plain file name")
        path = self._directory / name
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UserError(f"cannot read secret file {str(path)!r}: {exc}") from None
        if mode & 0o077:
            raise UserError(
                f"secret file {str(path)!r} is readable by group or others; run chmod 600 on it"
            )
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read secret file {str(path)!r}: {exc}") from None


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
    """Replaces every known secret value in text with ``[REDACTED]``."""

    # Values shorter than this would redact ordinary words; such secrets are refused anyway
    # by nothing here, so we still redact them but only as whole strings, never substrings.
    _MIN_SUBSTRING = 6

    def __init__(self) -> None:
        self._values: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        if value:
            with self._lock:
                self._values = self._values | {value}

    def redact_text(self, text: str) -> str:
        for value in self._values:
            if len(value) >= self._MIN_SUBSTRING:
                text = text.replace(value, REDACTED)
            elif text == value:
                return REDACTED
        return text

    def redact(self, value: object) -> object:
        """Redact strings anywhere inside a JSON-like value; Secrets become the marker."""
        if isinstance(value, Secret):
            return REDACTED
        if not self._values:
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {
                self.redact(k) if isinstance(k, str) else k: self.redact(v)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.redact(v) for v in value]
        return value
