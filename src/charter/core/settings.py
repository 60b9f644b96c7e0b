"""Process settings, read from ``CHARTER_*`` environment variables.

State lives under ``CHARTER_HOME`` (default ``./.charter``): the audit log, secrets directory
and, later, the database.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

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
    """

    home: Path
    secrets_dir: Path
    environment: str = "dev"
    database_url: str = ""

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
        )
