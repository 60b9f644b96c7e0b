"""``Governance``: releases, promotions, traffic and the rollout guard over one database.

The CLI and ``Runtime`` use this one object; each concern lives in its own module
(``releases``, ``promotion``, ``traffic``, ``guard``, ``changelog``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from charter.contract.loader import Charter
from charter.contract.schema import RolloutSpec, parse_window
from charter.core.clock import Clock
from charter.core.errors import UserError
from charter.core.events import EventBus
from charter.core.settings import Settings
from charter.governance.changelog import GovernanceLog
from charter.governance.guard import GuardVerdict, judge
from charter.governance.promotion import Promotions
from charter.governance.releases import Release, ReleaseStore
from charter.governance.traffic import Deployment, Traffic
from charter.storage.database import Database

__all__ = ["Governance", "TickResult"]

GUARD_ACTOR = "rollout-guard"


@dataclass(frozen=True, slots=True)
class TickResult:
    """What one ``tick`` of a rollout did: ``rolled_back``, ``advanced`` or ``held``."""

    action: str
    verdict: GuardVerdict | None
    deployment: Deployment
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "why": self.why,
            "verdict": self.verdict.as_dict() if self.verdict else None,
            "deployment": self.deployment.as_dict(),
        }


class Governance:
    def __init__(self, database: Database, clock: Clock, bus: EventBus, settings: Settings) -> None:
        self.database = database
        self.clock = clock
        self.log = GovernanceLog(database, clock, bus)
        self.releases = ReleaseStore(database, clock, self.log, settings.home)
        self.traffic = Traffic(database, clock, self.log)
        self.promotions = Promotions(database, clock, self.log, self.traffic, settings)

    def labels(self, charter_name: str) -> dict[str, str]:
        """Release id -> ``name@vN``, for messages and the changelog."""
        return {r.id: r.label for r in self.releases.list(charter_name)}

    def serve(
        self, charter_name: str, environment: str, tenant: str, user: str
    ) -> tuple[Charter, Release]:
        """The charter this user's next run in ``environment`` is served by (sticky)."""
        release_id = self.traffic.route(charter_name, environment, tenant, user)
        release = self.releases.find(release_id)
        if release is None:  # a deployment names only releases that exist; fail closed
            raise UserError(f"release {release_id[:12]} served by {charter_name} is missing")
        return self.releases.charter_of(release), release

    def rollout_spec(self, deployment: Deployment) -> RolloutSpec:
        """The rollout plan and guards in force: the stable release's (the proven
        configuration judges the new one, not the other way round)."""
        stable = self.releases.find(deployment.stable_release)
        if stable is None:  # a deployment names only releases that exist; fail closed
            raise UserError(f"stable release {deployment.stable_release[:12]} is missing")
        return self.releases.charter_of(stable).spec.rollout

    def guard(self, charter_name: str, environment: str) -> GuardVerdict:
        """Judge the rollout in progress against the stable release's guards."""
        deployment = self.traffic.current(charter_name, environment)
        if deployment is None or deployment.candidate_release is None:
            raise ValueError("no rollout in progress")
        return self._judge(deployment)

    def _judge(self, deployment: Deployment) -> GuardVerdict:
        guards = self.rollout_spec(deployment).guards
        return judge(self.database, deployment, guards, self.clock.now())

    def tick(self, charter_name: str, environment: str) -> TickResult:
        """One step of an unattended rollout: roll back on a guard breach; otherwise advance
        when the stable charter's ``rollout.advance_every`` has passed since the last change.

        Raises:
            UserError: no rollout is in progress.
        """
        labels = self.labels(charter_name)
        deployment = self.traffic.require(charter_name, environment)
        if deployment.candidate_release is None:
            return TickResult("held", None, deployment, "no rollout in progress")
        verdict = self._judge(deployment)
        if verdict.breached:
            rolled = self.traffic.rollback(
                charter_name,
                environment,
                by=GUARD_ACTOR,
                automatic=True,
                reason="rollout guard: " + "; ".join(verdict.reasons),
                details={"verdict": verdict.as_dict()},
                labels=labels,
            )
            return TickResult("rolled_back", verdict, rolled, "; ".join(verdict.reasons))
        spec = self.rollout_spec(deployment)
        if not verdict.judged:
            return TickResult("held", verdict, deployment, verdict.reasons[0])
        if spec.advance_every is None:
            return TickResult("held", verdict, deployment, "guards hold; advance by command")
        due = deployment.updated_at + timedelta(seconds=parse_window(spec.advance_every))
        if self.clock.now() < due:
            return TickResult("held", verdict, deployment, f"next step due at {due.isoformat()}")
        advanced = self.traffic.advance(
            charter_name,
            environment,
            spec.plan,
            by=GUARD_ACTOR,
            labels=labels,
            reason=f"guards held over {spec.guards.window}; scheduled step",
        )
        return TickResult("advanced", verdict, advanced, "guards held; scheduled step")
