"""Eval suites: YAML files of tasks, loaded with every problem reported at its file:line.

```yaml
suite: support-desk-golden        # a name: lowercase letters, digits, dashes
kind: golden                      # golden (business outcomes) or security (attacks)
systems: charter_examples.support_desk.evaluation:systems
defaults:
  principal: {user: alice, tenant: acme, roles: [support]}
  environment: prod
tasks:
  - id: refund-double-charge
    tags: [refund]
    input: Please handle ticket T-1001.
    fixture: {}                   # the systems' initial state (the systems define its shape)
    checks:
      - outcome: succeeded
      - tool_called: {tool: issue_refund, args: {amount_usd: 45}}
```

Loading checks the whole file: the schema, unique task ids, every check (``checks.py``) and
every fixture (by the systems). Tool names in checks are checked against the charter when
the suite is run (``Suite.problems_with``), since a suite may be run under several charters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from charter.contract.loader import Charter
from charter.contract.yaml_schema import plain, schema_problems
from charter.contract.yaml_source import YamlDocument, load_yaml
from charter.core.canonical import sha256_hex
from charter.core.errors import Problem, SuiteInvalid, UserError
from charter.evaluation.checks import Check, CheckError, parse_check
from charter.evaluation.systems import Systems, load_systems
from charter.execution.agent import ESCALATE_TOOL
from charter.identity.principal import ENVIRONMENTS, Principal

__all__ = ["Suite", "SuiteKind", "Task", "load_suite", "load_suites"]

SuiteKind = Literal["golden", "security"]
_NAME = r"^[a-z0-9][a-z0-9-]{0,62}$"
_TASK_ID = r"^[a-z0-9][a-z0-9._-]{0,99}$"
_GUIDE = "docs/evaluation.md"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrincipalSpec(_Strict):
    user: str = Field(min_length=1, max_length=200)
    tenant: str = Field(min_length=1, max_length=200)
    roles: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list)


class Defaults(_Strict):
    principal: PrincipalSpec | None = None
    environment: Literal["dev", "staging", "prod"] | None = None


class AttackSpec(_Strict):
    """Where a generated security task came from (``redteam.py`` writes it)."""

    payload: str
    goal: str
    fields: list[str] = Field(min_length=1)
    source_task: str


class TaskSpec(_Strict):
    id: Annotated[str, Field(pattern=_TASK_ID)]
    tags: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(default_factory=list)
    input: str = Field(min_length=1, max_length=20_000)
    principal: PrincipalSpec | None = None
    environment: Literal["dev", "staging", "prod"] | None = None
    fixture: dict[str, Any] = Field(default_factory=dict)
    checks: list[Any] = Field(min_length=1)
    attack: AttackSpec | None = None


class SuiteSpec(_Strict):
    suite: Annotated[str, Field(pattern=_NAME)]
    kind: SuiteKind
    description: str = ""
    systems: Annotated[str, Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")]
    defaults: Defaults = Field(default_factory=Defaults)
    tasks: list[TaskSpec] = Field(min_length=1, max_length=10_000)


@dataclass(frozen=True, slots=True)
class Task:
    """One runnable task: who asks what, in which world, and what must be true after."""

    suite: str
    kind: SuiteKind
    id: str
    tags: tuple[str, ...]
    input: str
    principal: Principal
    environment: str
    fixture: Mapping[str, Any]
    checks: tuple[Check, ...]
    line: int
    attack: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.id}"


@dataclass(frozen=True, slots=True)
class Suite:
    name: str
    kind: SuiteKind
    path: Path
    sha256: str
    systems: Systems
    systems_path: str
    tasks: tuple[Task, ...]
    spec: SuiteSpec = field(repr=False)

    def problems_with(self, charter: Charter) -> list[Problem]:
        """Checks naming a tool the charter does not declare, or an argument it lacks."""
        problems: list[Problem] = []
        for task in self.tasks:
            for check in task.checks:
                for tool, arguments in check.tools:
                    problem = _tool_problem(charter, tool, arguments)
                    if problem is not None:
                        problems.append(
                            Problem(
                                str(self.path),
                                check.line,
                                f"task {task.id!r}: {problem}",
                                f"tools in {charter.name}: {', '.join(sorted(charter.tools))}",
                            )
                        )
        return problems


def _tool_problem(charter: Charter, tool: str, arguments: Sequence[str]) -> str | None:
    if tool == ESCALATE_TOOL:
        return None
    spec = charter.tools.get(tool)
    if spec is None:
        return f"check names tool {tool!r}, which charter {charter.name!r} does not declare"
    accepted = spec.json_schema.get("properties", {})
    unknown = [name for name in arguments if name not in accepted]
    if unknown:
        return f"check names argument {unknown[0]!r}, which {tool} does not take"
    return None


def load_suites(paths: Sequence[Path]) -> list[Suite]:
    """Load every suite, reporting the problems of all files together."""
    suites: list[Suite] = []
    problems: list[Problem] = []
    for path in paths:
        try:
            suites.append(load_suite(path))
        except SuiteInvalid as exc:
            problems.extend(exc.problems)
    names = [s.name for s in suites]
    for suite in suites:
        if names.count(suite.name) > 1:
            problems.append(
                Problem(
                    str(suite.path),
                    1,
                    f"suite name {suite.name!r} is used by another file in this run",
                    "give each suite its own name",
                )
            )
    if problems:
        raise SuiteInvalid(problems)
    return suites


def load_suite(path: Path) -> Suite:
    """Load one suite file.

    Raises:
        SuiteInvalid: every problem found, each at its file:line.
    """
    shown = str(path)
    loaded = load_yaml(path, shown)
    if isinstance(loaded, Problem):
        raise SuiteInvalid([loaded])
    doc = loaded
    if not isinstance(doc.data, dict):
        raise SuiteInvalid(
            [Problem(shown, 1, "a suite must be a YAML mapping", "start with 'suite: <name>'")]
        )
    try:
        spec = SuiteSpec.model_validate(plain(doc.data))
    except ValidationError as exc:
        raise SuiteInvalid(schema_problems(doc, exc, SuiteSpec, guide=_GUIDE)) from None
    try:
        systems = load_systems(spec.systems)
    except UserError as exc:
        raise SuiteInvalid([doc.problem(("systems",), str(exc), "check the import path")]) from None
    problems: list[Problem] = []
    tasks = [_task(doc, spec, index, systems, problems) for index in range(len(spec.tasks))]
    if problems:
        raise SuiteInvalid(sorted(problems, key=lambda p: p.line))
    return Suite(
        name=spec.suite,
        kind=spec.kind,
        path=path,
        sha256=sha256_hex(doc.text),
        systems=systems,
        systems_path=spec.systems,
        tasks=tuple(t for t in tasks if t is not None),
        spec=spec,
    )


def _task(
    doc: YamlDocument, spec: SuiteSpec, index: int, systems: Systems, problems: list[Problem]
) -> Task | None:
    task = spec.tasks[index]
    where: tuple[str | int, ...] = ("tasks", index)
    before = len(problems)
    if any(other.id == task.id for other in spec.tasks[:index]):
        problems.append(
            doc.problem(
                (*where, "id"), f"task id {task.id!r} is used twice", "give every task its own id"
            )
        )
    principal_spec = task.principal or spec.defaults.principal
    if principal_spec is None:
        problems.append(
            doc.problem(
                where,
                f"task {task.id!r} has no principal",
                "add principal: {user, tenant, roles} or defaults.principal",
            )
        )
    checks: list[Check] = []
    for number, raw in enumerate(task.checks):
        loc = (*where, "checks", number)
        try:
            checks.append(parse_check(raw, line=doc.line_of(loc)))
        except CheckError as exc:
            problems.append(
                doc.problem((*loc, *exc.path), f"task {task.id!r}: {exc}", f"see {_GUIDE}")
            )
    for fixture_problem in systems.check_fixture(task.fixture):
        place = ".".join(map(str, fixture_problem.path)) or "(top level)"
        problems.append(
            doc.problem(
                (*where, "fixture", *fixture_problem.path),
                f"task {task.id!r}: fixture {place}: {fixture_problem.message}",
                "see the systems' fixture format",
            )
        )
    if len(problems) > before or principal_spec is None:
        return None
    environment = task.environment or spec.defaults.environment or "prod"
    assert environment in ENVIRONMENTS
    try:
        principal = Principal(
            user=principal_spec.user,
            tenant=principal_spec.tenant,
            roles=tuple(principal_spec.roles),
        )
    except ValueError as exc:
        problems.append(doc.problem((*where, "principal"), f"task {task.id!r}: {exc}"))
        return None
    return Task(
        suite=spec.suite,
        kind=spec.kind,
        id=task.id,
        tags=tuple(task.tags),
        input=task.input,
        principal=principal,
        environment=environment,
        fixture=task.fixture,
        checks=tuple(checks),
        line=doc.line_of(where),
        attack=task.attack.model_dump() if task.attack else None,
    )
