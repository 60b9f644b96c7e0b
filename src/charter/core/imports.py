"""Importing code a configuration file names (toolkits, model factories, eval systems).

Importing a module runs it: a charter naming a module is trusted to name code, as a
``requirements.txt`` is. What importing must not do is take the process down with it or
write into Charter's own output, so ``import_named``

- turns any exception, ``SystemExit`` included (``unittest.__main__`` exits when imported),
  into a ``UserError`` saying what happened; only ``KeyboardInterrupt`` goes through, so
  Ctrl-C still stops Charter;
- captures what the module prints on stdout (``this`` prints the Zen of Python), so
  ``--json`` output stays one JSON document, and returns it for the caller to report;
  stderr is captured too and replayed after a successful import (warnings and logs belong
  there), dropped after a failed one (the error says what went wrong);
- gives the module an empty stdin, so a module that asks for input gets end-of-file
  instead of waiting for a keypress.

A module can still hang, or end the process with ``os._exit``: no in-process import can
prevent that, which is why only trusted authors may name code.
"""

from __future__ import annotations

import importlib
import io
import re
import sys
from dataclasses import dataclass
from types import ModuleType

from charter.core.errors import UserError

__all__ = ["Imported", "import_named"]

_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_MAX_NAME = 500


@dataclass(frozen=True, slots=True)
class Imported:
    """A module and what importing it printed on stdout (empty for a well-behaved one)."""

    module: ModuleType
    printed: str


def import_named(name: str) -> Imported:
    """Import module ``name`` (dotted, e.g. ``examples.support_desk.tools``).

    Raises:
        UserError: ``name`` is not a module name, or importing it raised or tried to exit;
            the message is the reason alone (callers say what the module was for).
    """
    if len(name) > _MAX_NAME or not _MODULE_NAME.fullmatch(name):
        raise UserError(f"{name!r} is not a module name (write package.module)")
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
    try:
        module = importlib.import_module(name)
    except KeyboardInterrupt:
        raise
    except SystemExit as exc:
        raise UserError(
            f"the module tried to exit the process (SystemExit({exc.code!r}))"
        ) from None
    except BaseException as exc:  # importing runs the module: anything may go wrong
        raise UserError(str(exc).strip() or type(exc).__name__) from None
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
    if err.getvalue():
        sys.stderr.write(err.getvalue())
    return Imported(module, out.getvalue())
