"""A durable record of the desk's irreversible effects: the payment and email providers.

``EffectsLedger`` stands for the external systems a refund or an email really reaches. Like
Stripe, it dedupes by idempotency key: the first delivery of a key is the effect, a repeated
delivery only counts another attempt and gets the first effect's id back. It lives in a SQLite
file outside Charter, so a crash test can count how many refunds were paid and emails sent,
even after ``kill -9`` of the workers that sent them:

- WAL mode with ``synchronous=FULL``: a delivery that returned is on disk and survives the
  process being killed right after.
- Every delivery is one ``BEGIN IMMEDIATE`` transaction (with a 30 s busy timeout), so several
  processes delivering the same key at once still record one effect.
- Payloads are stored as canonical JSON, never pickled.

The run id of an effect is read from its key. Charter builds ``ToolContext.idempotency_key`` as
``'<run_id>:<step>'`` (``Run.call`` in ``charter/execution/run.py``) and a compensation's as
``'<run_id>:<step>:compensate'``; the run id is what precedes the step, so it may itself
contain ':'. A key without ':' (a hand-made one, as in some tests) has the run id ``''``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn, get_args

__all__ = ["Effect", "EffectKind", "EffectsLedger", "run_id_of"]

EffectKind = Literal["refund", "email"]
_KINDS: tuple[str, ...] = get_args(EffectKind)
_ID_PREFIX = {"refund": "R", "email": "M"}  # like the desk's in-memory ids
_COMPENSATE = ":compensate"
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    idempotency_key TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('refund', 'email')),
    run_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    first_at REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Effect:
    """One effect as the provider recorded it (the first delivery's payload)."""

    key: str
    kind: EffectKind
    run_id: str
    payload: dict[str, Any]
    attempts: int  # how many times the key was delivered, the first time included
    effect_id: str
    first_at: float  # Unix time of the first delivery


def run_id_of(idempotency_key: str) -> str:
    """The run id in a Charter idempotency key (see the module docstring)."""
    key = idempotency_key.removesuffix(_COMPENSATE)
    return key.rpartition(":")[0]


def _effect_id(kind: str, rowid: int) -> str:
    # The rowid is unique across processes (rows are inserted under the write lock) and
    # stable: rows are never deleted and the file is never vacuumed.
    return f"{_ID_PREFIX[kind]}-{rowid:04d}"


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; ``deliver`` opens its own.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # Waits out other processes opening the file at once (busy_timeout applies).
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"{path} cannot use WAL (journal mode {mode!r})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_SCHEMA)
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        raise
    return conn


class EffectsLedger:
    """The effects that reached the outside world, in a SQLite file shared by processes.

    Thread-safe; open one per process (or per desk) on the same path. It cannot be pickled;
    copying it (as ``copy.deepcopy`` of a desk does) gives the same ledger, since copying
    the world does not copy the payment provider.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = _connect(self.path)
        self._lock = threading.Lock()
        # A desk made per run by ``make_resources`` is rarely closed: close it when collected.
        self._finalizer = weakref.finalize(self, self._conn.close)

    def deliver(
        self, kind: EffectKind, idempotency_key: str, payload: dict[str, Any]
    ) -> tuple[str, bool]:
        """Deliver an effect once per key: ``(effect_id, first_time)``.

        A key seen before only counts another attempt and returns the first effect's id;
        its payload is not compared or stored again (the provider keeps the first).
        """
        if kind not in _KINDS:
            raise ValueError(f"unknown effect kind {kind!r}; expected one of {_KINDS}")
        if not isinstance(idempotency_key, str) or not idempotency_key.strip():
            raise ValueError(
                f"an effect needs a non-empty idempotency key, got {idempotency_key!r}"
            )
        if not isinstance(payload, dict):
            raise TypeError(f"an effect's payload must be a dict, got {type(payload).__name__}")
        canonical = _canonical(payload)  # before the transaction: a bad payload writes nothing
        with self._lock:
            conn = self._open()
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    "SELECT rowid, kind FROM effects WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row is not None:
                    rowid, stored_kind = row
                    if stored_kind != kind:
                        raise ValueError(
                            f"idempotency key {idempotency_key!r} was already used for "
                            f"a {stored_kind}, not a {kind}"
                        )
                    conn.execute(
                        "UPDATE effects SET attempts = attempts + 1 WHERE rowid = ?", (rowid,)
                    )
                    first_time = False
                else:
                    cursor = conn.execute(
                        "INSERT INTO effects (idempotency_key, kind, run_id, payload, attempts,"
                        " first_at) VALUES (?, ?, ?, ?, 1, ?)",
                        (idempotency_key, kind, run_id_of(idempotency_key), canonical, time.time()),
                    )
                    rowid = cursor.lastrowid
                    assert rowid is not None
                    first_time = True
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return _effect_id(kind, rowid), first_time

    def effects(self, kind: EffectKind | None = None) -> list[Effect]:
        """Every recorded effect, or those of one kind, in the order they first happened."""
        if kind is not None and kind not in _KINDS:
            raise ValueError(f"unknown effect kind {kind!r}; expected one of {_KINDS}")
        query = (
            "SELECT rowid, idempotency_key, kind, run_id, payload, attempts, first_at FROM effects"
        )
        params: tuple[str, ...] = ()
        if kind is not None:
            query += " WHERE kind = ?"
            params = (kind,)
        with self._lock:
            rows = self._open().execute(query + " ORDER BY rowid", params).fetchall()
        return [
            Effect(
                key=key,
                kind=row_kind,
                run_id=run_id,
                payload=json.loads(payload),
                attempts=attempts,
                effect_id=_effect_id(row_kind, rowid),
                first_at=first_at,
            )
            for rowid, key, row_kind, run_id, payload, attempts, first_at in rows
        ]

    def close(self) -> None:
        """Close the connection (idempotent); the ledger cannot be used afterwards."""
        self._finalizer()

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def _open(self) -> sqlite3.Connection:
        if self.closed:
            raise ValueError(f"the effects ledger on {self.path} is closed")
        return self._conn

    def __enter__(self) -> EffectsLedger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EffectsLedger({str(self.path)!r}{', closed' if self.closed else ''})"

    def __copy__(self) -> EffectsLedger:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> EffectsLedger:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "an EffectsLedger holds an open database connection and cannot be pickled; "
            "open another one on the same path instead"
        )
