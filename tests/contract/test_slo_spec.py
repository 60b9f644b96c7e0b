"""SLO objectives are checked for sense when the charter loads, each problem at its line."""

from __future__ import annotations

from decimal import Decimal
from typing import get_args

import pytest

from charter.contract.schema import SLO_KINDS, SloName, SloSpec
from tests.contract.helpers import CharterFiles

TOOLS = "tools:\n  get_order: {effect: read}\nslos:\n"
SLO_LINE = 8  # the first entry under slos:, after the 4-line header and three lines above

HIGHER = "{name} is a rate between 0 and 1 where higher is better; write it as '{example}'"
DESCRIBED = {
    "task_success_rate": HIGHER.format(name="task_success_rate", example=">= 0.95"),
    "escalation_accuracy": HIGHER.format(name="escalation_accuracy", example=">= 0.9"),
    "policy_violations_per_1000_runs": "policy_violations_per_1000_runs is a number of runs "
    "per 1000 runs (0 to 1000) where lower is better; write it as '<= 1'",
    "p95_latency_seconds": "p95_latency_seconds is a duration in seconds (0 or more) where "
    "lower is better; write it as '<= 30'",
    "tool_error_rate": "tool_error_rate is a rate between 0 and 1 where lower is better; "
    "write it as '<= 0.05'",
    "cost_per_run_usd": "cost_per_run_usd is an amount in USD (0 or more) where lower is "
    "better; write it as '<= 0.25'",
}


def _slo(files: CharterFiles, entry: str) -> str:
    problem = files.problem(f"{TOOLS}  - {entry}\n")
    assert problem.line == SLO_LINE
    return problem.message


def test_every_slo_name_has_a_kind() -> None:
    assert set(SLO_KINDS) == set(get_args(SloName))


@pytest.mark.parametrize(
    ("name", "objective"),
    [
        ("task_success_rate", "<= 0.5"),
        ("escalation_accuracy", "< 0.9"),
        ("policy_violations_per_1000_runs", ">= 1"),
        ("p95_latency_seconds", "> 2"),
        ("tool_error_rate", ">= 0.9"),
        ("cost_per_run_usd", ">= 0.10"),
    ],
)
def test_an_objective_pointing_the_wrong_way_says_which_way(
    files: CharterFiles, name: str, objective: str
) -> None:
    message = _slo(files, f"{{name: {name}, objective: '{objective}'}}")
    assert message == (
        f"slos.0.objective: objective '{objective}' points the wrong way: {DESCRIBED[name]}"
    )


@pytest.mark.parametrize(
    ("name", "objective"),
    [
        ("task_success_rate", ">= 95"),  # a percentage where a rate belongs
        ("escalation_accuracy", ">= -0.1"),
        ("tool_error_rate", "<= 1.5"),
        ("policy_violations_per_1000_runs", "<= 1001"),
        ("policy_violations_per_1000_runs", "<= -1"),
        ("p95_latency_seconds", "<= -3"),
        ("cost_per_run_usd", "<= -0.01"),
    ],
)
def test_an_objective_outside_what_the_measure_can_be_is_refused(
    files: CharterFiles, name: str, objective: str
) -> None:
    message = _slo(files, f"{{name: {name}, objective: '{objective}'}}")
    assert (
        message == f"slos.0.objective: objective '{objective}' is out of range: {DESCRIBED[name]}"
    )


@pytest.mark.parametrize(
    ("name", "objective"),
    [
        ("task_success_rate", "> 1"),
        ("escalation_accuracy", "> 1.0"),
        ("tool_error_rate", "< 0"),
        ("p95_latency_seconds", "< 0"),
        ("cost_per_run_usd", "< 0.00"),
    ],
)
def test_an_objective_no_value_can_meet_is_refused(
    files: CharterFiles, name: str, objective: str
) -> None:
    message = _slo(files, f"{{name: {name}, objective: '{objective}'}}")
    assert (
        message
        == f"slos.0.objective: objective '{objective}' can never be met: " + (DESCRIBED[name])
    )


def test_the_problem_is_on_the_objective_line_of_a_block_entry(files: CharterFiles) -> None:
    problem = files.problem(
        f'{TOOLS}  - name: p95_latency_seconds\n    window: 24h\n    objective: ">= 5"\n'
    )
    assert problem.line == SLO_LINE + 2
    assert "points the wrong way" in problem.message


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ("0m", "window '0m' is empty; give a length such as 7d"),
        ("521w", "window '521w' is longer than ten years; give at most 520w"),
        ("9" * 40 + "d", "is longer than ten years"),
        ("7days", "window '7days' must look like 30m, 24h, 7d or 2w"),
    ],
)
def test_a_window_that_is_empty_or_absurd_is_refused(
    files: CharterFiles, window: str, message: str
) -> None:
    found = _slo(files, f"{{name: task_success_rate, objective: '>= 0.9', window: {window}}}")
    assert found.startswith("slos.0.window: ")
    assert message in found


def test_an_objective_with_an_unknown_name_reports_only_the_name(files: CharterFiles) -> None:
    # The objective cannot be judged without a valid measure: one problem, not two.
    message = _slo(files, "{name: happiness, objective: '<= 0.5'}")
    assert message.startswith("slos.0.name: Input should be 'task_success_rate'")


@pytest.mark.parametrize(
    "entry",
    [
        "{name: task_success_rate, objective: '>= 1'}",  # no error budget: allowed
        "{name: task_success_rate, objective: '> 0'}",
        "{name: escalation_accuracy, objective: '>= 0.9', window: 30d}",
        "{name: policy_violations_per_1000_runs, objective: '<= 0'}",
        "{name: policy_violations_per_1000_runs, objective: '<= 1000'}",
        "{name: p95_latency_seconds, objective: '< 30', window: 30m}",
        "{name: tool_error_rate, objective: '< 1'}",
        "{name: cost_per_run_usd, objective: '<= 0', window: 520w}",
    ],
)
def test_sensible_objectives_load(files: CharterFiles, entry: str) -> None:
    assert files.problems(f"{TOOLS}  - {entry}\n") == []


@pytest.mark.parametrize(
    ("objective", "window", "comparator", "target", "seconds"),
    [
        (">= 0.95", "30m", ">=", Decimal("0.95"), 1800),
        (" > 0.5 ", "24h", ">", Decimal("0.5"), 86_400),
        ("<= 30", "7d", "<=", Decimal(30), 604_800),
        ("<0.001", "2w", "<", Decimal("0.001"), 1_209_600),
    ],
)
def test_a_spec_exposes_its_parsed_objective_and_window(
    objective: str, window: str, comparator: str, target: Decimal, seconds: int
) -> None:
    name = "task_success_rate" if comparator.startswith(">") else "p95_latency_seconds"
    spec = SloSpec(name=name, objective=objective, window=window)
    assert (spec.comparator, spec.target, spec.window_seconds) == (comparator, target, seconds)
    assert spec.higher_is_better is comparator.startswith(">")
    assert str(spec.target) == objective.strip(" <>=")  # exactly as written
