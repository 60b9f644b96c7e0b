"""Promotion: a release becomes eligible to serve an environment, if the rules allow it.

Rules (``Settings.protected_environments``, ``Settings.separate_duties_in``):
- into a protected environment (default staging and prod), only with a passing eval report
  produced for exactly this release: its charter hash is the release id, enforcement was on,
  and its gate passed;
- into an environment with separation of duties (default prod), only by someone other than
  the release's author. People are compared in canonical form (``charter.identity.names``):
  ``Alice`` cannot promote what ``alice`` wrote.

Every refusal lists all the reasons at once and changes nothing. The first release promoted
into an environment starts serving it (100% of traffic); later ones wait for a rollout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from charter.core.clock import Clock
from charter.core.environment import check_environment
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.ids import new_id
from charter.core.settings import Settings
from charter.governance.changelog import GovernanceLog
from charter.governance.releases import Release
from charter.governance.traffic import Traffic
from charter.identity.names import canonical_person
from charter.storage.database import Database, from_db_time
from charter.storage.tables import promotions

__all__ = ["Promotion", "PromotionRefused", "Promotions"]


class PromotionRefused(UserError):
    """The promotion breaks a rule; ``reasons`` says which, all of them."""

    code = "promotion_refused"

    def __init__(self, release: Release, environment: str, reasons: list[str]) -> None:
        self.reasons = tuple(reasons)
        listing = "\n".join(f"  - {r}" for r in reasons)
        super().__init__(f"cannot promote {release.label} to {environment}:\n{listing}")


@dataclass(frozen=True, slots=True)
class Promotion:
    id: str
    release_id: str
    charter_name: str
    environment: str
    promoted_by: str
    promoted_at: datetime
    reason: str
    evidence: dict[str, Any]
    serving: bool = False  # whether this promotion started serving the environment

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "release": self.release_id,
            "charter": self.charter_name,
            "environment": self.environment,
            "promoted_by": self.promoted_by,
            "promoted_at": self.promoted_at.isoformat(),
            "reason": self.reason,
            "evidence": self.evidence,
            "serving": self.serving,
        }


class Promotions:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        log: GovernanceLog,
        traffic: Traffic,
        settings: Settings,
    ) -> None:
        self._database = database
        self._clock = clock
        self._log = log
        self._traffic = traffic
        self._settings = settings

    def promote(
        self,
        release: Release,
        environment: str,
        *,
        by: str,
        reason: str,
        report: Mapping[str, Any] | None = None,
        report_path: Path | None = None,
    ) -> Promotion:
        """Promote ``release`` into ``environment``.

        ``by`` is a person, any spelling of them; the promotion records the canonical form.

        Raises:
            PromotionRefused: a rule is broken (every broken rule is listed).
            UserError: a bad name or environment.
        """
        by = canonical_person(by, "--as")
        check_environment(environment)
        reasons = self._refusals(release, environment, by, report)
        if reasons:
            raise PromotionRefused(release, environment, reasons)
        evidence: dict[str, Any] = {}
        if report is not None:
            evidence = {
                "report_id": report.get("id"),
                "report_path": str(report_path) if report_path else None,
                "gate": report.get("gate"),
                "summary": report.get("summary"),
            }
        promotion = Promotion(
            id=new_id("prm"),
            release_id=release.id,
            charter_name=release.charter_name,
            environment=environment,
            promoted_by=by,
            promoted_at=self._clock.now().astimezone(UTC),
            reason=reason.strip() or "promoted",
            evidence=evidence,
        )
        try:
            with self._database.engine.begin() as connection:
                connection.execute(
                    insert(promotions).values(
                        id=promotion.id,
                        release_id=release.id,
                        charter_name=release.charter_name,
                        environment=environment,
                        promoted_by=by,
                        promoted_at=promotion.promoted_at,
                        reason=promotion.reason,
                        evidence=json.dumps(evidence, default=str),
                    )
                )
                serving = self._traffic.serve_first(connection, release, environment, by=by)
                event = self._log.record(
                    connection,
                    charter_name=release.charter_name,
                    action="promoted",
                    actor=by,
                    reason=promotion.reason,
                    environment=environment,
                    release_id=release.id,
                    details={
                        **evidence,
                        "serving": serving,
                        **({"stable": release.id} if serving else {}),
                    },
                    summary=f"promoted {release.label} to {environment}"
                    + (" (now serving 100%)" if serving else ""),
                )
        except IntegrityError:
            raise UserError(f"{release.label} is already promoted to {environment}") from None
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot record the promotion: {exc}") from None
        self._log.publish(event)
        return replace(promotion, serving=serving)

    def is_promoted(self, release_id: str, environment: str) -> bool:
        query = select(promotions.c.id).where(
            (promotions.c.release_id == release_id) & (promotions.c.environment == environment)
        )
        try:
            with self._database.engine.connect() as connection:
                return connection.execute(query).first() is not None
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read promotions: {exc}") from None

    def of_release(self, release_id: str) -> list[Promotion]:
        query = select(promotions).where(promotions.c.release_id == release_id)
        try:
            with self._database.engine.connect() as connection:
                rows = connection.execute(query.order_by(promotions.c.promoted_at)).mappings()
                return [
                    Promotion(
                        id=r["id"],
                        release_id=r["release_id"],
                        charter_name=r["charter_name"],
                        environment=r["environment"],
                        promoted_by=r["promoted_by"],
                        promoted_at=from_db_time(r["promoted_at"]),
                        reason=r["reason"],
                        evidence=json.loads(r["evidence"]),
                    )
                    for r in rows
                ]
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read promotions: {exc}") from None

    def _refusals(
        self, release: Release, environment: str, by: str, report: Mapping[str, Any] | None
    ) -> list[str]:
        reasons: list[str] = []
        if self.is_promoted(release.id, environment):
            reasons.append(f"{release.label} is already promoted to {environment}")
        if environment in self._settings.protected_environments:
            reasons += _report_problems(release, report)
        # A release is a record, kept with its author as given (before issue 11, not
        # canonical): compare the person it names, never the spelling. Authors were always
        # checked identifiers, so this cannot fail on a stored one.
        author = canonical_person(release.author, "the release's author")
        if environment in self._settings.separate_duties_in and by == author:
            reasons.append(
                f"{by!r} wrote {release.label} (as {release.author!r}); in {environment} "
                "someone else must promote it (separation of duties)"
            )
        return reasons


def _report_problems(release: Release, report: Mapping[str, Any] | None) -> list[str]:
    """Why ``report`` does not let ``release`` into a protected environment (empty: it does)."""
    if report is None:
        return [
            "a protected environment needs a passing eval report for this release: run "
            "'charter eval ... --charter <the released charter> --gate 0.95' and pass "
            "--report OUT/report.json"
        ]
    problems: list[str] = []
    evaluated = str(report.get("charter", {}).get("sha256", ""))
    if evaluated != release.id:
        problems.append(
            f"the eval report is for charter content {evaluated[:12] or '(none)'}, not this "
            f"release ({release.id[:12]}): evaluate exactly the released charter"
        )
    if report.get("enforcement") is not True:
        problems.append("the eval report was made with enforcement off (--no-enforce)")
    gate = report.get("gate")
    if not gate:
        problems.append("the eval report has no gate verdict: run charter eval with --gate")
    elif not gate.get("passed"):
        why = "; ".join(gate.get("reasons", [])) or "no reason recorded"
        problems.append(f"the eval report's gate failed: {why}")
    return problems
