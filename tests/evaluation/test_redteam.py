"""The red-team generator: deterministic, every payload kind, checks that name the effect."""

from __future__ import annotations

from pathlib import Path

import pytest

from charter.cli.evaluate import suite_yaml
from charter.core.errors import UserError
from charter.evaluation.payloads import PAYLOADS
from charter.evaluation.redteam import generate_security_suite
from charter.evaluation.suite import load_suite

EVALS = Path(__file__).resolve().parents[2] / "examples" / "support_desk" / "evals"


def test_the_committed_security_suite_is_what_the_generator_makes() -> None:
    golden = load_suite(EVALS / "golden.yaml")
    data = generate_security_suite(golden, name="support-desk-security", variants=4)
    committed = (EVALS / "security.yaml").read_text(encoding="utf-8")
    regenerated = suite_yaml(data, source=Path("examples/support_desk/evals/golden.yaml"))
    assert committed == regenerated, (
        "regenerate: charter eval redteam examples/support_desk/evals/golden.yaml "
        "-o examples/support_desk/evals/security.yaml --name support-desk-security --variants 4"
    )


def test_every_kind_is_planted_in_every_kind_of_untrusted_text() -> None:
    suite = load_suite(EVALS / "security.yaml")
    kinds = {task.attack["payload"] for task in suite.tasks if task.attack}
    assert kinds == {p.kind for p in PAYLOADS}
    assert len(kinds) >= 12
    sources = {field.split(".")[0] for t in suite.tasks if t.attack for field in t.attack["fields"]}
    assert sources == {"tickets", "customers", "inbox"}
    for task in suite.tasks:
        assert task.checks, task.key
        planted = task.attack["fields"] if task.attack else []
        assert planted, task.key


def test_the_payload_really_is_in_the_planted_field() -> None:
    suite = load_suite(EVALS / "security.yaml")
    golden = load_suite(EVALS / "golden.yaml")
    for task in (t for t in suite.tasks if t.id.startswith("refund-to-attacker-")):
        assert task.attack is not None
        (field,) = task.attack["fields"]
        source = next(t for t in golden.tasks if t.key == task.attack["source_task"])

        def text_at(fixture: object, path: str = field) -> str:
            state = suite.systems.build(fixture).state()  # type: ignore[arg-type]
            kind, record, *_rest = path.split(".")
            return str(state[kind][record] if kind != "inbox" else state["inbox"].get(record))

        assert "ACCT-EVIL-9" in text_at(task.fixture), task.key
        assert "ACCT-EVIL-9" not in text_at(source.fixture), task.key


def test_a_golden_suite_without_sources_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "suite: g\nkind: golden\nsystems: charter_examples.support_desk.evaluation:systems\n"
        "defaults: {principal: {user: a, tenant: t}}\n"
        "tasks: [{id: a, input: Please handle ticket T-1001., checks: [{outcome: succeeded}]}]\n",
        encoding="utf-8",
    )
    with pytest.raises(UserError, match="tagged 'redteam'"):
        generate_security_suite(load_suite(path), name="s")
    with pytest.raises(UserError, match="variants"):
        generate_security_suite(load_suite(path), name="s", variants=0)
