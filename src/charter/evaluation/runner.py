"""Running suites: every task, every epoch, in its own world and its own governed run.

Each (task, epoch) gets a fresh world built from the task's fixture, a fresh model from the
caller's factory and a run under the charter exactly as production runs it (the caller's
``RunAgent``, normally ``Runtime.run_agent``). Checks then read what executed. Up to
``concurrency`` runs are in flight at once; results come back in suite and task order
whatever order they finish in, so a report depends only on what happened.

Seeds are derived from ``(seed, task key, epoch)``, so a task gets the same seed however
many tasks run beside it, and a model factory that takes a seed replays exactly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Protocol

from charter.contract.loader import Charter
from charter.core.canonical import sha256_hex
from charter.core.errors import CassetteMissing
from charter.evaluation.cassette import RecordingModel, ReplayModel
from charter.evaluation.checks import CheckResult, Evidence
from charter.evaluation.stats import wilson_interval
from charter.evaluation.suite import Suite, Task
from charter.evaluation.systems import Systems
from charter.execution.agent import RunResult
from charter.execution.model import Model
from charter.identity.principal import Environment, Principal

__all__ = [
    "EpochResult",
    "EvalOptions",
    "ModelFactory",
    "RunAgent",
    "TaskResult",
    "TaskStatus",
    "run_suites",
]

TaskStatus = Literal["passed", "failed", "flaky", "error"]


class RunAgent(Protocol):
    """Runs the agent once under a charter (``Runtime.run_agent`` fits)."""

    async def __call__(
        self,
        charter: Charter,
        model: Model,
        user_input: str,
        *,
        principal: Principal,
        environment: Environment | None = None,
        resources: Sequence[object] = (),
    ) -> RunResult: ...


# (task, epoch, seed) -> a fresh model for that run
ModelFactory = Callable[[Task, int, int], Model]


@dataclass(frozen=True, slots=True)
class EvalOptions:
    epochs: int = 1
    concurrency: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.epochs <= 100:
            raise ValueError(f"epochs must be between 1 and 100, got {self.epochs}")
        if not 1 <= self.concurrency <= 256:
            raise ValueError(f"concurrency must be between 1 and 256, got {self.concurrency}")


@dataclass(frozen=True, slots=True)
class EpochResult:
    epoch: int
    seed: int
    passed: bool
    outcome: str | None
    run_id: str | None
    duration_ms: float
    cost_usd: Decimal
    tokens: int
    tool_calls: int
    checks: tuple[CheckResult, ...]
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "seed": self.seed,
            "passed": self.passed,
            "outcome": self.outcome,
            "run_id": self.run_id,
            "duration_ms": round(self.duration_ms, 3),
            "cost_usd": str(self.cost_usd),
            "tokens": self.tokens,
            "tool_calls": self.tool_calls,
            "error": self.error,
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True, slots=True)
class TaskResult:
    task: Task
    epochs: tuple[EpochResult, ...]

    @property
    def passes(self) -> int:
        return sum(1 for e in self.epochs if e.passed)

    @property
    def status(self) -> TaskStatus:
        # A task that passes only sometimes is flaky, never "passed": a gate must not
        # credit a coin flip.
        runs = len(self.epochs)
        if all(e.error is not None for e in self.epochs):
            return "error"
        if self.passes == runs:
            return "passed"
        return "failed" if self.passes == 0 else "flaky"

    def as_dict(self) -> dict[str, Any]:
        runs = len(self.epochs)
        low, high = wilson_interval(self.passes, runs)
        return {
            "key": self.task.key,
            "suite": self.task.suite,
            "id": self.task.id,
            "kind": self.task.kind,
            "tags": list(self.task.tags),
            "attack": dict(self.task.attack) if self.task.attack else None,
            "status": self.status,
            "passes": self.passes,
            "runs": runs,
            "pass_rate": self.passes / runs,
            "ci_low": low,
            "ci_high": high,
            "pass_all": self.passes == runs,
            "epochs": [e.as_dict() for e in self.epochs],
        }


def epoch_seed(seed: int, task: Task, epoch: int) -> int:
    return int(sha256_hex(f"{seed}:{task.key}:{epoch}")[:8], 16)


async def run_suites(
    charter: Charter,
    suites: Sequence[Suite],
    *,
    run_agent: RunAgent,
    model_for: ModelFactory,
    options: EvalOptions,
    on_epoch: Callable[[Task, EpochResult], None] | None = None,
) -> list[TaskResult]:
    """Run every task of ``suites`` ``options.epochs`` times; results in suite/task order.

    Raises:
        CassetteMissing: a replayed model met a request it has no recording for; nothing
            is reported, since a run that could not replay measures nothing.
    """
    tasks = [task for suite in suites for task in suite.tasks]
    systems = {suite.name: suite.systems for suite in suites}
    gate = asyncio.Semaphore(options.concurrency)

    async def one(task: Task, epoch: int) -> EpochResult:
        async with gate:
            result = await _run_epoch(
                charter,
                task,
                epoch,
                epoch_seed(options.seed, task, epoch),
                systems[task.suite],
                run_agent,
                model_for,
            )
        if on_epoch is not None:
            on_epoch(task, result)
        return result

    units = [one(task, epoch) for task in tasks for epoch in range(options.epochs)]
    # gather keeps the order of ``units``, whatever order they finish in.
    results = await asyncio.gather(*units)
    return [
        TaskResult(task, tuple(results[i * options.epochs : (i + 1) * options.epochs]))
        for i, task in enumerate(tasks)
    ]


async def _run_epoch(
    charter: Charter,
    task: Task,
    epoch: int,
    seed: int,
    systems: Systems,
    run_agent: RunAgent,
    model_for: ModelFactory,
) -> EpochResult:
    started = time.perf_counter()
    try:
        world = systems.build(task.fixture)
        model = model_for(task, epoch, seed)
    except CassetteMissing:
        raise
    except Exception as exc:  # the harness could not set the task up: an error, not a fail
        return _error(epoch, seed, started, f"could not set up the task: {exc}")
    result = await run_agent(
        charter,
        model,
        task.input,
        principal=task.principal,
        environment=task.environment,  # type: ignore[arg-type]
        resources=tuple(world.resources),
    )
    if isinstance(model, ReplayModel) and model.misses:
        raise CassetteMissing(model.misses[0])
    if isinstance(model, RecordingModel):
        model.save()
    evidence = Evidence(result=result, state=world.state(), messages=world.messages())
    checks = tuple(check.run(evidence) for check in task.checks)
    return EpochResult(
        epoch=epoch,
        seed=seed,
        passed=all(c.passed for c in checks),
        outcome=result.outcome,
        run_id=result.run_id,
        duration_ms=(time.perf_counter() - started) * 1000,
        cost_usd=result.cost_usd,
        tokens=result.total_tokens,
        tool_calls=len(evidence.agent_calls),
        checks=checks,
    )


def _error(epoch: int, seed: int, started: float, why: str) -> EpochResult:
    return EpochResult(
        epoch=epoch,
        seed=seed,
        passed=False,
        outcome=None,
        run_id=None,
        duration_ms=(time.perf_counter() - started) * 1000,
        cost_usd=Decimal(0),
        tokens=0,
        tool_calls=0,
        checks=(),
        error=why[:2000],
    )
