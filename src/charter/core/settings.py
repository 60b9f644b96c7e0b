"""Process settings, read from ``CHARTER_*`` environment variables.

State lives under ``CHARTER_HOME`` (default ``./.charter``): the audit log, secrets directory
and, later, the database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from charter.core.environment import ENVIRONMENTS
from charter.core.errors import UserError

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """Where Charter keeps state and how it behaves.

    Attributes:
        home: ``CHARTER_HOME``; everything Charter writes goes under it.
        secrets_dir: ``CHARTER_SECRETS_DIR`` (default ``<home>/secrets``), one file per
            credential for the file secret provider.
        environment: ``CHARTER_ENVIRONMENT``: dev, staging or prod, the default for runs.
        database_url: ``CHARTER_DATABASE_URL``; default a SQLite file under ``home``.
            Postgres: ``postgresql://user@host:5432/dbname``.
        otlp_endpoint: ``CHARTER_OTLP_ENDPOINT``: where to export traces (OTLP over
            HTTP/protobuf, e.g. ``http://127.0.0.1:6006/v1/traces``); none: no export.
        otlp_headers: ``CHARTER_OTLP_HEADERS``: ``key=value,key2=value2`` sent with each
            export (e.g. an API key). Secret: never logged or shown.
        trace_content: ``CHARTER_TRACE_CONTENT=1`` records prompts, tool arguments and
            results on spans (redacted); off by default.
        review_usd_per_hour: ``CHARTER_REVIEW_USD_PER_HOUR``: what an hour of a human
            reviewer's time costs, for the cost of approval waits (default 0: not counted).
        retain_spans_days / retain_runs_days: ``CHARTER_RETAIN_SPANS_DAYS`` (default 30) and
            ``CHARTER_RETAIN_RUNS_DAYS`` (default 90): what ``charter prune`` keeps. The
            audit log is never pruned.
        protected_environments: ``CHARTER_PROTECTED_ENVIRONMENTS`` (default
            ``staging,prod``): promotion into them needs a passing eval report for exactly
            the release promoted.
        separate_duties_in: ``CHARTER_SEPARATE_DUTIES_IN`` (default ``prod``): promotion
            into them must be done by someone other than the release's author.
    """

    home: Path
    secrets_dir: Path
    environment: str = "dev"
    database_url: str = ""
    otlp_endpoint: str = ""
    otlp_headers: str = ""
    trace_content: bool = False
    review_usd_per_hour: Decimal = Decimal(0)
    retain_spans_days: int = 30
    retain_runs_days: int = 90
    protected_environments: tuple[str, ...] = ("staging", "prod")
    separate_duties_in: tuple[str, ...] = ("prod",)

    @property
    def database(self) -> str:
        """The database URL in force (the SQLite default when none is set)."""
        return self.database_url or f"sqlite:///{self.home / 'charter.sqlite3'}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("CHARTER_HOME", ".charter")).expanduser()
        secrets = Path(env.get("CHARTER_SECRETS_DIR", str(home / "secrets"))).expanduser()
        return cls(
            home=home,
            secrets_dir=secrets,
            environment=env.get("CHARTER_ENVIRONMENT", "dev"),
            database_url=env.get("CHARTER_DATABASE_URL", ""),
            otlp_endpoint=env.get("CHARTER_OTLP_ENDPOINT", ""),
            otlp_headers=env.get("CHARTER_OTLP_HEADERS", ""),
            trace_content=_flag(env, "CHARTER_TRACE_CONTENT"),
            review_usd_per_hour=_money(env, "CHARTER_REVIEW_USD_PER_HOUR"),
            retain_spans_days=_days(env, "CHARTER_RETAIN_SPANS_DAYS", 30),
            retain_runs_days=_days(env, "CHARTER_RETAIN_RUNS_DAYS", 90),
            protected_environments=_names(
                env, "CHARTER_PROTECTED_ENVIRONMENTS", ("staging", "prod")
            ),
            separate_duties_in=_names(env, "CHARTER_SEPARATE_DUTIES_IN", ("prod",)),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise UserError(f"{name}={env[name]!r} must be 1/true/yes/on or 0/false/no/off")


def _money(env: Mapping[str, str], name: str) -> Decimal:
    raw = env.get(name, "").strip()
    if not raw:
        return Decimal(0)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise UserError(f"{name}={raw!r} must be an amount in USD, like 60 or 85.50") from None
    if not value.is_finite() or value < 0:
        raise UserError(f"{name}={raw!r} must be a non-negative amount in USD")
    return value


def _days(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"{name}={raw!r} must be a whole number of days, at least 1")
    return int(raw)


def _names(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [n for n in names if n not in ENVIRONMENTS]
    if unknown:
        raise UserError(
            f"{name}={raw!r}: unknown environment {unknown[0]!r}; use a comma-separated "
            f"list of {', '.join(ENVIRONMENTS)} (or empty for none)"
        )
    return names
