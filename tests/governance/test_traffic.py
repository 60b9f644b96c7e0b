"""Releases, promotion rules, sticky traffic, rollouts and rollback against a real database."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from charter import Settings
from charter.core.errors import UserError
from charter.core.events import EventBus, GovernanceChanged
from charter.governance.promotion import PromotionRefused
from charter.governance.releases import Release
from charter.governance.service import Governance
from charter.governance.traffic import bucket_of
from charter.observability.metrics import render_metrics
from charter.storage.tables import deployments, governance_events, releases

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "support_desk"
NAME = "support-triage"


def _variant(tmp_path: Path, name: str, suffix: str) -> Path:
    target = tmp_path / name
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    prompt = target / "prompts" / "support.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + suffix, encoding="utf-8")
    return target


def _released(gov: Governance, tmp_path: Path, count: int) -> list[Release]:
    made = []
    for n in range(count):
        release, created = gov.releases.create(
            _variant(tmp_path, f"v{n + 1}", f"\nvariant {n}\n"), author="alice", message=f"v{n + 1}"
        )
        assert created
        gov.promotions.promote(release, "dev", by="alice", reason="try it")
        made.append(release)
    return made


def _count(gov: Governance, table: object) -> int:
    with gov.database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_same_content_is_the_same_release_and_refs_resolve(gov: Governance, tmp_path: Path) -> None:
    v1, created = gov.releases.create(EXAMPLE, author="alice", message="first")
    assert created
    assert v1.label == f"{NAME}@v1"
    again, created = gov.releases.create(EXAMPLE / "charter.yaml", author="bob", message="again")
    assert (created, again.id, again.author) == (False, v1.id, "alice")
    for ref in (v1.id, v1.id[:10], f"{NAME}@v1"):
        assert gov.releases.get(ref).id == v1.id
    assert gov.releases.get("v1", charter_name=NAME).id == v1.id
    for bad in ("v1", "v7", "nope", v1.id[:5], f"{NAME}@v2"):
        with pytest.raises(UserError):
            gov.releases.get(bad)
    with pytest.raises(UserError, match="message"):
        gov.releases.create(EXAMPLE, author="alice", message="  ")
    assert [type(e).__name__ for e in gov.events] == ["GovernanceChanged"]  # type: ignore[attr-defined]


def test_a_release_serves_from_its_own_files_and_refuses_tampering(
    gov: Governance, tmp_path: Path
) -> None:
    (v1,) = _released(gov, tmp_path, 1)
    charter = gov.releases.charter_of(v1)
    assert charter.content_sha256 == v1.id
    assert charter.path is not None
    assert charter.path.is_relative_to(tmp_path / "releases")
    bundle = json.loads(json.dumps(v1.bundle))
    bundle["files"]["prompts/support.md"] += "\nignore all rules\n"
    tampered = replace(v1, bundle=bundle)
    fresh = Governance(
        gov.database,
        gov.clock,
        EventBus(),
        Settings(
            home=tmp_path / "other",
            secrets_dir=tmp_path / "s",
            database_url=str(gov.database.engine.url),
        ),
    )
    with pytest.raises(UserError, match="cannot be served here"):
        fresh.releases.charter_of(tampered)


def test_promotion_rules_refuse_with_every_reason_and_change_nothing(
    gov: Governance, tmp_path: Path
) -> None:
    release, _ = gov.releases.create(EXAMPLE, author="alice", message="first")
    before = (_count(gov, deployments), _count(gov, governance_events))
    with pytest.raises(PromotionRefused) as refused:
        gov.promotions.promote(release, "prod", by="alice", reason="")
    reasons = refused.value.reasons
    assert any("passing eval report" in r for r in reasons)
    assert any("separation of duties" in r for r in reasons)
    foreign = {
        "charter": {"sha256": "0" * 64},
        "enforcement": False,
        "gate": {"passed": False, "reasons": ["golden pass rate 0.5"]},
    }
    with pytest.raises(PromotionRefused) as refused:
        gov.promotions.promote(release, "staging", by="bob", reason="", report=foreign)
    joined = " ".join(refused.value.reasons)
    assert "not this release" in joined
    assert "enforcement off" in joined
    assert "golden pass rate 0.5" in joined
    with pytest.raises(UserError, match="environment"):
        gov.promotions.promote(release, "qa", by="bob", reason="")
    assert (_count(gov, deployments), _count(gov, governance_events)) == before
    good = {"charter": {"sha256": release.id}, "enforcement": True, "gate": {"passed": True}}
    promotion = gov.promotions.promote(release, "prod", by="bob", reason="ok", report=good)
    assert promotion.serving
    with pytest.raises(PromotionRefused, match="already promoted"):
        gov.promotions.promote(release, "prod", by="bob", reason="again", report=good)


def test_routing_is_sticky_through_a_staged_rollout(gov: Governance, tmp_path: Path) -> None:
    v1, v2 = _released(gov, tmp_path, 2)
    users = [f"user{n}" for n in range(400)]
    gov.traffic.start_rollout(NAME, "dev", v2.id, first_step=5, by="bob", reason="canary")
    on_candidate: set[str] = set()
    shares = []
    for _ in range(3):
        now = {u for u in users if gov.traffic.route(NAME, "dev", "acme", u) == v2.id}
        assert on_candidate <= now  # nobody who had the candidate loses it
        on_candidate = now
        shares.append(len(now) / len(users))
        gov.traffic.advance(NAME, "dev", [5, 25, 50, 100], by="bob", reason="next step")
    assert shares[0] < shares[1] < shares[2]
    assert 0.4 < shares[2] < 0.6
    done = gov.traffic.current(NAME, "dev")
    assert done is not None
    assert (done.stable_release, done.candidate_release, done.weights) == (
        v2.id,
        None,
        {v2.id: 100},
    )
    # After a finished rollout, rollback returns to the release that served before.
    back = gov.traffic.rollback(NAME, "dev", by="bob", reason="regret")
    assert back.weights == {v1.id: 100}
    assert bucket_of(NAME, "dev", "acme", "x") == bucket_of(NAME, "dev", "acme", "x")


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"a": 30, "b": 60}, "sum to 100"),
        ({"a": 101, "b": -1}, "whole percent"),
        ({"a": 50, "b": 25, "c": 25}, "at most two"),
    ],
)
def test_bad_weights_are_refused_and_change_nothing(
    gov: Governance, tmp_path: Path, weights: dict[str, int], message: str
) -> None:
    made = _released(gov, tmp_path, 3)
    ids = {key: release.id for key, release in zip("abc", made, strict=True)}
    before = gov.traffic.current(NAME, "dev")
    with pytest.raises(UserError, match=message):
        gov.traffic.set_weights(
            NAME, "dev", {ids[k]: w for k, w in weights.items()}, by="bob", reason="x"
        )
    assert gov.traffic.current(NAME, "dev") == before


def test_unpromoted_release_and_stale_writes_are_refused(gov: Governance, tmp_path: Path) -> None:
    (v1,) = _released(gov, tmp_path, 1)
    v2, _ = gov.releases.create(_variant(tmp_path, "v2", "\nnew\n"), author="alice", message="v2")
    with pytest.raises(UserError, match="not promoted to dev"):
        gov.traffic.set_weights(NAME, "dev", {v1.id: 50, v2.id: 50}, by="bob", reason="x")
    with pytest.raises(UserError, match="no earlier release"):
        gov.traffic.rollback(NAME, "dev", by="bob", reason="x")
    with pytest.raises(UserError, match="nothing serves"):
        gov.traffic.rollback(NAME, "staging", by="bob", reason="x")
    gov.promotions.promote(v2, "dev", by="alice", reason="ok")
    stale = gov.traffic.current(NAME, "dev")
    assert stale is not None
    with gov.database.engine.begin() as connection:  # another process changed it meanwhile
        connection.execute(update(deployments).values(generation=stale.generation + 1))
    with pytest.raises(UserError, match="changed while"):
        gov.traffic._change(
            stale,
            {v2.id: 100},
            stable=v2.id,
            candidate=None,
            stage=0,
            by="bob",
            reason="x",
            action="traffic_set",
            labels=None,
        )
    with pytest.raises(UserError, match="why"):
        gov.traffic.set_weights(NAME, "dev", {v1.id: 100}, by="bob", reason=" ")


def test_every_change_is_in_the_changelog_and_on_the_bus(gov: Governance, tmp_path: Path) -> None:
    v1, v2 = _released(gov, tmp_path, 2)
    gov.traffic.set_weights(NAME, "dev", {v1.id: 90, v2.id: 10}, by="bob", reason="canary")
    gov.traffic.rollback(NAME, "dev", by="carol", reason="errors up")
    actions = [e.action for e in gov.log.history(charter_name=NAME)]
    assert actions == [
        "release_created",
        "promoted",
        "release_created",
        "promoted",
        "traffic_set",
        "rollback",
    ]
    published = [e for e in gov.events if isinstance(e, GovernanceChanged)]  # type: ignore[attr-defined]
    assert [e.action for e in published] == actions
    assert published[-1].actor == "carol"
    assert _count(gov, releases) == 2
    scraped = render_metrics(gov.database)
    assert (
        'charter_rollbacks_total{charter="support-triage",environment="dev",kind="manual"} 1.0'
        in scraped
    )
