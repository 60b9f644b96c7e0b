"""Which release serves each run: per charter and environment, releases with traffic weights.

A deployment (one row of ``deployments`` per charter and environment) holds the weights, the
*stable* release (last known good) and, during a rollout, the *candidate*. Routing is sticky:
a run's bucket (0-99) is a hash of charter, environment, tenant and user, the stable
release takes the low buckets and the candidate the high ones, so a user who got the
candidate at 5% keeps it at 25%, 50% and 100%, and one who had the stable release keeps it
until their bucket is reached.

Every change bumps ``generation`` and is read by the next run's ``route``: there is no
cache to expire, so a rollback reaches new runs as soon as it is committed (measured in
``benchmarks/governance.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from charter.core.clock import Clock
from charter.core.environment import check_environment
from charter.core.errors import DatabaseUnavailable, UserError
from charter.core.events import GovernanceChanged
from charter.governance.changelog import GovernanceLog
from charter.governance.releases import Release
from charter.identity.names import canonical_person
from charter.storage.database import Database, from_db_time
from charter.storage.tables import deployments, governance_events, promotions

__all__ = ["Deployment", "Traffic", "bucket_of"]


@dataclass(frozen=True, slots=True)
class Deployment:
    charter_name: str
    environment: str
    weights: dict[str, int]  # release id -> percent; stable first
    stable_release: str
    candidate_release: str | None
    stage: int
    generation: int
    updated_at: datetime
    updated_by: str

    def release_for(self, bucket: int) -> str:
        """The release serving ``bucket`` (0-99): stable low, candidate high, others between."""
        order = [self.stable_release] + [
            r for r in self.weights if r not in (self.stable_release, self.candidate_release)
        ]
        if self.candidate_release is not None:
            order.append(self.candidate_release)
        edge = 0
        for release in order:
            edge += self.weights.get(release, 0)
            if bucket < edge:
                return release
        return order[-1]

    def as_dict(self) -> dict[str, Any]:
        return {
            "charter": self.charter_name,
            "environment": self.environment,
            "weights": dict(self.weights),
            "stable": self.stable_release,
            "candidate": self.candidate_release,
            "stage": self.stage,
            "generation": self.generation,
            "updated_at": self.updated_at.isoformat(),
            "updated_by": self.updated_by,
        }


def bucket_of(charter_name: str, environment: str, tenant: str, user: str) -> int:
    """A user's sticky traffic bucket, 0-99."""
    key = f"{charter_name}\x1f{environment}\x1f{tenant}\x1f{user}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") % 100


class Traffic:
    """Reads and changes deployments; every change is recorded in the changelog."""

    def __init__(self, database: Database, clock: Clock, log: GovernanceLog) -> None:
        self._database = database
        self._clock = clock
        self._log = log

    # -- reading -------------------------------------------------------------------------

    def current(self, charter_name: str, environment: str) -> Deployment | None:
        query = select(deployments).where(
            (deployments.c.charter_name == charter_name)
            & (deployments.c.environment == environment)
        )
        try:
            with self._database.engine.connect() as connection:
                row = connection.execute(query).mappings().first()
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read deployments: {exc}") from None
        return _deployment(row) if row is not None else None

    def route(self, charter_name: str, environment: str, tenant: str, user: str) -> str:
        """The id of the release that serves this user's next run.

        Raises:
            UserError: nothing is deployed for the charter in the environment.
        """
        deployment = self.current(charter_name, environment)
        if deployment is None:
            raise UserError(
                f"no release of {charter_name!r} serves {environment}; promote one first "
                f"('charter promote RELEASE --to {environment}')"
            )
        return deployment.release_for(bucket_of(charter_name, environment, tenant, user))

    # -- changing ------------------------------------------------------------------------

    def serve_first(
        self, connection: Connection, release: Release, environment: str, *, by: str
    ) -> bool:
        """Inside a promotion: serve ``release`` at 100% if nothing serves the environment
        yet. Returns whether it did."""
        exists = connection.execute(
            select(deployments.c.generation).where(
                (deployments.c.charter_name == release.charter_name)
                & (deployments.c.environment == environment)
            )
        ).first()
        if exists is not None:
            return False
        connection.execute(
            insert(deployments).values(
                charter_name=release.charter_name,
                environment=environment,
                weights=json.dumps({release.id: 100}),
                stable_release=release.id,
                candidate_release=None,
                stage=0,
                generation=1,
                updated_at=self._clock.now().astimezone(UTC),
                updated_by=by,
            )
        )
        return True

    def set_weights(
        self,
        charter_name: str,
        environment: str,
        weights: Mapping[str, int],
        *,
        by: str,
        reason: str,
        labels: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Serve the given releases with the given percentages (summing to 100).

        The release already stable stays stable if it keeps traffic; the other release with
        traffic becomes the candidate (at most two releases may share traffic).

        Raises:
            UserError: bad weights, or a release not promoted to the environment.
        """
        _check_weights(weights)
        current = self.require(charter_name, environment)
        live = {r: w for r, w in weights.items() if w > 0}
        if len(live) > 2:
            raise UserError("at most two releases can share traffic (stable and candidate)")
        if current.stable_release in live:
            stable = current.stable_release
        else:
            stable = max(live, key=lambda r: live[r])
        candidates = [r for r in live if r != stable]
        candidate = candidates[0] if candidates else None
        return self._change(
            current,
            {stable: live[stable], **({candidate: live[candidate]} if candidate else {})},
            stable=stable,
            candidate=candidate,
            stage=current.stage,
            by=by,
            reason=reason,
            action="traffic_set",
            labels=labels,
        )

    def start_rollout(
        self,
        charter_name: str,
        environment: str,
        candidate: str,
        *,
        first_step: int,
        by: str,
        reason: str,
        labels: Mapping[str, str] | None = None,
    ) -> Deployment:
        current = self.require(charter_name, environment)
        if candidate == current.stable_release:
            raise UserError("that release already serves all traffic; nothing to roll out")
        if current.candidate_release not in (None, candidate):
            raise UserError(
                "another rollout is in progress; finish it or roll it back first "
                "('charter rollback ...')"
            )
        return self._change(
            current,
            {current.stable_release: 100 - first_step, candidate: first_step},
            stable=current.stable_release,
            candidate=candidate,
            stage=0,
            by=by,
            reason=reason,
            action="rollout_started",
            labels=labels,
        )

    def advance(
        self,
        charter_name: str,
        environment: str,
        plan: Sequence[int],
        *,
        by: str,
        reason: str,
        labels: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Move the candidate to the next step of ``plan``; at 100 it becomes the stable
        release and the rollout is over."""
        current = self.require(charter_name, environment)
        candidate = current.candidate_release
        if candidate is None:
            raise UserError(f"no rollout of {charter_name!r} is in progress in {environment}")
        share = current.weights.get(candidate, 0)
        later = [step for step in plan if step > share]
        step = later[0] if later else 100
        if step >= 100:
            return self._change(
                current,
                {candidate: 100},
                stable=candidate,
                candidate=None,
                stage=len(plan),
                by=by,
                reason=reason,
                action="rollout_advanced",
                labels=labels,
            )
        return self._change(
            current,
            {current.stable_release: 100 - step, candidate: step},
            stable=current.stable_release,
            candidate=candidate,
            stage=plan.index(step),
            by=by,
            reason=reason,
            action="rollout_advanced",
            labels=labels,
        )

    def rollback(
        self,
        charter_name: str,
        environment: str,
        *,
        by: str,
        reason: str,
        automatic: bool = False,
        details: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Deployment:
        """All traffic back to the last good release: the stable one during a rollout,
        otherwise the release that was stable before the current one.

        Raises:
            UserError: nothing is deployed, or there is no earlier release to return to.
        """
        current = self.require(charter_name, environment)
        if current.candidate_release is not None:
            target = current.stable_release
        else:
            previous = self._previous_stable(current)
            if previous is None:
                only = (labels or {}).get(current.stable_release, current.stable_release[:12])
                raise UserError(
                    f"{charter_name!r} in {environment} has no earlier release to roll back "
                    f"to (only {only} has served it)"
                )
            target = previous
        return self._change(
            current,
            {target: 100},
            stable=target,
            candidate=None,
            stage=0,
            by=by,
            reason=reason,
            action="auto_rollback" if automatic else "rollback",
            labels=labels,
            extra=dict(details or {}),
        )

    # -- internals -----------------------------------------------------------------------

    def require(self, charter_name: str, environment: str) -> Deployment:
        check_environment(environment)
        current = self.current(charter_name, environment)
        if current is None:
            raise UserError(
                f"nothing serves {charter_name!r} in {environment} yet; promote a release first"
            )
        return current

    def _previous_stable(self, current: Deployment) -> str | None:
        """The most recent stable release before the current one, from the changelog."""
        query = (
            select(governance_events.c.details)
            .where(
                (governance_events.c.charter_name == current.charter_name)
                & (governance_events.c.environment == current.environment)
            )
            .order_by(governance_events.c.id.desc())
        )
        try:
            with self._database.engine.connect() as connection:
                for (details,) in connection.execute(query):
                    stable = json.loads(details).get("stable")
                    if stable and stable != current.stable_release:
                        return str(stable)
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot read the changelog: {exc}") from None
        return None

    def _change(
        self,
        current: Deployment,
        weights: dict[str, int],
        *,
        stable: str,
        candidate: str | None,
        stage: int,
        by: str,
        reason: str,
        action: str,
        labels: Mapping[str, str] | None,
        extra: dict[str, Any] | None = None,
    ) -> Deployment:
        by = canonical_person(by, "--as")  # one spelling per person (issue 11)
        if not reason.strip():
            raise UserError("say why (--reason): the changelog records it")
        now = self._clock.now().astimezone(UTC)
        shown = {(labels or {}).get(r, r[:12]): w for r, w in weights.items()}
        summary = ", ".join(f"{name}={w}%" for name, w in shown.items())
        details = {
            "weights": weights,
            "stable": stable,
            "candidate": candidate,
            "previous": current.weights,
            **(extra or {}),
        }
        event: GovernanceChanged
        try:
            with self._database.engine.begin() as connection:
                for release in weights:
                    _require_promoted(connection, current, release, labels)
                changed = connection.execute(
                    update(deployments)
                    .where(
                        (deployments.c.charter_name == current.charter_name)
                        & (deployments.c.environment == current.environment)
                        & (deployments.c.generation == current.generation)
                    )
                    .values(
                        weights=json.dumps(weights),
                        stable_release=stable,
                        candidate_release=candidate,
                        stage=stage,
                        generation=current.generation + 1,
                        updated_at=now,
                        updated_by=by,
                    )
                ).rowcount
                if changed != 1:
                    raise UserError(
                        "the deployment changed while this command ran; look at it again "
                        "('charter rollout status') and retry"
                    )
                event = self._log.record(
                    connection,
                    charter_name=current.charter_name,
                    action=action,
                    actor=by,
                    reason=reason,
                    environment=current.environment,
                    release_id=candidate or stable,
                    details=details,
                    summary=f"{action.replace('_', ' ')}: {summary}",
                )
        except SQLAlchemyError as exc:
            raise DatabaseUnavailable(f"cannot change the deployment: {exc}") from None
        self._log.publish(event)
        return Deployment(
            current.charter_name,
            current.environment,
            dict(weights),
            stable,
            candidate,
            stage,
            current.generation + 1,
            now,
            by,
        )


def _require_promoted(
    connection: Connection,
    current: Deployment,
    release: str,
    labels: Mapping[str, str] | None,
) -> None:
    found = connection.execute(
        select(promotions.c.id).where(
            (promotions.c.release_id == release)
            & (promotions.c.environment == current.environment)
            & (promotions.c.charter_name == current.charter_name)
        )
    ).first()
    if found is None:
        name = (labels or {}).get(release, release[:12])
        raise UserError(
            f"{name} is not promoted to {current.environment}; promote it first "
            f"('charter promote {name} --to {current.environment}')"
        )


def _check_weights(weights: Mapping[str, int]) -> None:
    if not weights:
        raise UserError("give at least one release=percent")
    for release, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
            raise UserError(
                f"weight of {release[:12]} must be a whole percent 0-100, not {weight!r}"
            )
    total = sum(weights.values())
    if total != 100:
        raise UserError(f"weights must sum to 100, not {total}")


def _deployment(row: Any) -> Deployment:
    return Deployment(
        charter_name=row["charter_name"],
        environment=row["environment"],
        weights=json.loads(row["weights"]),
        stable_release=row["stable_release"],
        candidate_release=row["candidate_release"],
        stage=row["stage"],
        generation=row["generation"],
        updated_at=from_db_time(row["updated_at"]),
        updated_by=row["updated_by"],
    )
