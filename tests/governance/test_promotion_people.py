"""Promotion's separation of duties and governance authors compare people canonically."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from charter.core.errors import UserError
from charter.governance.promotion import PromotionRefused
from charter.governance.service import Governance
from charter.storage.tables import deployments, governance_events, releases

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"


def _passing(release_id: str) -> dict[str, object]:
    return {"charter": {"sha256": release_id}, "enforcement": True, "gate": {"passed": True}}


@pytest.mark.parametrize("by", ["alice", "ALICE", " Alice ", "\uff41lice"], ids=ascii)
def test_the_author_cannot_promote_to_prod_under_another_spelling(gov: Governance, by: str) -> None:
    release, _ = gov.releases.create(EXAMPLE, author="Alice", message="first")
    assert release.author == "alice"
    with pytest.raises(PromotionRefused) as refused:
        gov.promotions.promote(release, "prod", by=by, reason="", report=_passing(release.id))
    assert refused.value.reasons == (
        f"'alice' wrote {release.label} (as 'alice'); in prod someone else must promote it "
        "(separation of duties)",
    )


def test_a_release_stored_before_names_were_canonical_still_binds_its_author(
    gov: Governance,
) -> None:
    release, _ = gov.releases.create(EXAMPLE, author="alice", message="first")
    # Releases are records: migration 0007 leaves their author as given. Write one as an
    # older Charter stored it.
    with gov.database.engine.begin() as connection:
        connection.execute(update(releases).values(author="Alice"))
    stored = gov.releases.get(release.id)
    assert stored.author == "Alice"
    with pytest.raises(PromotionRefused, match=r"'alice' wrote .* \(as 'Alice'\)"):
        gov.promotions.promote(stored, "prod", by="alice", reason="", report=_passing(stored.id))


def test_someone_else_promotes_and_is_recorded_canonical(gov: Governance) -> None:
    release, _ = gov.releases.create(EXAMPLE, author="alice", message="first")
    promotion = gov.promotions.promote(
        release, "prod", by="Bob", reason="ok", report=_passing(release.id)
    )
    assert promotion.promoted_by == "bob"
    with gov.database.engine.connect() as connection:
        actors = connection.execute(select(governance_events.c.actor)).scalars().all()
        updated_by = connection.execute(select(deployments.c.updated_by)).scalars().all()
    assert actors == ["alice", "bob"]  # the release, then the promotion
    assert updated_by == ["bob"]


def test_an_author_that_cannot_be_a_person_is_refused(gov: Governance) -> None:
    for author in ("ali\u200bce", "\u0430lice", "al ice"):
        with pytest.raises(UserError, match="is not a valid identifier"):
            gov.releases.create(EXAMPLE, author=author, message="first")
