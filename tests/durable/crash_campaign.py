"""Many support-desk runs while workers are killed with SIGKILL at random moments.

The test suite calls :func:`campaign`; run it by hand for a longer one::

    python -m tests.durable.crash_campaign --runs 300 --kills 20 [--database-url URL --workers 2]

Runs are queued with ``enqueue_run``, executed by ``charter worker`` processes, and a
"killer" SIGKILLs a random worker every few seconds and restarts it under the same executor
id (which is how a crashed worker's runs are recovered). Meanwhile an approver decides every
request that parks a run, whether or not a worker is alive to hear it. Refunds and emails
go through the support desk's durable effects ledger (``SUPPORT_DESK_EFFECTS_DB``), which
stands for the payment and email providers: it counts every delivery attempt per
idempotency key, so a repeated effect shows up even though the providers dedupe it.

Afterwards :func:`check` proves: every run ended; no run paid or emailed more than its audit
log says, a run that did not succeed sent no email, and no effect was delivered under two
keys; every run has exactly one start and one finish record and one audit record per call
in its result; the audit chain verifies.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from charter_examples.support_desk.demo import CHARTER_PATH
from charter_examples.support_desk.effects import EffectsLedger
from charter_examples.support_desk.scenarios import DEMO_TICKETS

from charter import Charter, Settings
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.durable import RunSpec, enqueue_run, notify_decision, run_status
from charter.durable.system_db import dbos_client
from charter.execution.approval_store import ApprovalStore
from charter.identity.roles import RoleGrants
from charter.observability.audit import AuditLog
from charter.observability.audit_recorder import AuditRecorder
from charter.storage import Database
from charter.storage.migrate import upgrade

CLI = [sys.executable, "-c", "from charter.cli.app import main; main()"]
TENANT = "acme"
APPROVER = "lead"
_ENDED = {"SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}


@dataclass
class Report:
    runs: int
    workers: int
    kills: int
    seconds: float
    outcomes: dict[str, int]
    decisions: dict[str, int]
    effects: dict[str, int]
    repeated_deliveries: int  # a step re-run after a kill, deduped by its idempotency key
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Workers:
    """``charter worker`` processes with stable ids, killed and restarted on demand."""

    def __init__(self, count: int, env: dict[str, str], logs: Path) -> None:
        self._env = env
        self._logs = logs
        self._ids = [f"crash-w{n}" for n in range(1, count + 1)]
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []
        for worker_id in self._ids:
            self.start(worker_id)

    def start(self, worker_id: str) -> None:
        log = (self._logs / f"{worker_id}.log").open("ab")
        self._files.append(log)
        self._procs[worker_id] = subprocess.Popen(
            [*CLI, "worker", "--id", worker_id], env=self._env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill_and_restart(self, rng: random.Random) -> None:
        worker_id = rng.choice(self._ids)
        process = self._procs[worker_id]
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        self.start(worker_id)

    def check_alive(self) -> None:
        for worker_id, process in self._procs.items():
            if process.poll() is not None:
                raise AssertionError(
                    f"worker {worker_id} exited on its own ({process.returncode}); see "
                    f"{self._logs / (worker_id + '.log')}"
                )

    def stop(self) -> None:
        for process in self._procs.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self._procs.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for log in self._files:
            log.close()


def campaign(home: Path, *, runs: int = 100, kills: int = 8, workers: int = 1,
             database_url: str = "", seed: int | None = None,
             timeout: float = 600) -> Report:  # fmt: skip
    """Run the campaign in ``home`` (a fresh directory) and return what :func:`check` found."""
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, secrets_dir=home / "secrets", database_url=database_url)
    effects_path = home / "effects.sqlite3"
    env = {
        **os.environ,
        "CHARTER_HOME": str(home),
        "CHARTER_DATABASE_URL": database_url,
        "CHARTER_SECRET_PAYMENTS_REFUND": "sk_test_crash_campaign",
        "SUPPORT_DESK_EFFECTS_DB": str(effects_path),
    }
    database = Database(settings.database)
    upgrade(database)
    clock = SystemClock()
    roles = RoleGrants(database, clock)
    roles.grant(TENANT, APPROVER, "approver", by="crash-campaign")
    audit = AuditLog(database)
    bus = EventBus()
    bus.subscribe(AuditRecorder(audit))
    approvals = ApprovalStore(database, clock, bus, roles)
    charter = Charter.load(CHARTER_PATH)
    run_ids = []
    started = time.monotonic()
    for index in range(runs):
        ticket = DEMO_TICKETS[index % len(DEMO_TICKETS)]
        spec = RunSpec(
            charter_path=str(CHARTER_PATH), charter_sha256=charter.content_sha256,
            user=ticket.user, tenant=TENANT, roles=ticket.roles, environment="prod",
            input=ticket.input,
        )  # fmt: skip
        run_id = f"run_crash_{seed}_{index:04d}_{uuid.uuid4().hex[:6]}"
        enqueue_run(settings, charter, spec, run_id)
        run_ids.append(run_id)
    pool = Workers(workers, env, home)
    decisions: Counter[str] = Counter()
    done_kills = 0
    # Kills are spread over the campaign's progress, not the clock: at random points between
    # 5% and 85% of the runs ended (and at least 0.5 s apart). So that every kill lands while
    # runs are in flight however fast this machine works, the approver leaves one parked run
    # undecided per kill still to come.
    kill_at = sorted(rng.uniform(0.05, 0.85) * runs for _ in range(kills))
    last_kill = 0.0
    try:
        pending_runs = set(run_ids)
        while pending_runs:
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{len(pending_runs)} runs did not end in {timeout} s")
            pool.check_alive()
            _decide_all(settings, approvals, rng, decisions, keep=kills - done_kills)
            ended = runs - len(pending_runs)
            due = done_kills < kills and ended >= kill_at[done_kills]
            if due and time.monotonic() - last_kill >= 0.5:
                pool.kill_and_restart(rng)
                done_kills += 1
                last_kill = time.monotonic()
            pending_runs = _not_ended(settings, pending_runs)
            time.sleep(0.2)
    finally:
        pool.stop()
    seconds = time.monotonic() - started
    with EffectsLedger(effects_path) as ledger:
        report = check(settings, audit, ledger, run_ids)
    audit.close()
    database.dispose()
    report.workers = workers
    report.kills = done_kills
    report.seconds = round(seconds, 1)
    report.decisions = dict(decisions)
    return report


def _not_ended(settings: Settings, run_ids: set[str]) -> set[str]:
    with dbos_client(settings) as client:
        found = client.list_workflows(
            workflow_ids=sorted(run_ids), load_input=False, load_output=False
        )
    return {w.workflow_id for w in found if w.status not in _ENDED}


def _decide_all(settings: Settings, approvals: ApprovalStore, rng: random.Random,
                decisions: Counter[str], *, keep: int = 0) -> None:  # fmt: skip
    """Approve or reject (at random) every pending request but the ``keep`` newest, as an
    approver would."""
    pending = approvals.list(tenant=TENANT, status="pending", limit=1000)
    for request in sorted(pending, key=lambda r: r.requested_at)[: max(0, len(pending) - keep)]:
        verdict = rng.choice(("approve", "reject"))
        approvals.decide(request.id, verdict, by=APPROVER, reason="crash campaign")
        notify_decision(settings, run_id=request.run_id, request_id=request.id,
                        verdict=verdict, by=APPROVER, reason="crash campaign")  # fmt: skip
        decisions[verdict] += 1


def check(settings: Settings, audit: AuditLog, ledger: EffectsLedger,
          run_ids: list[str]) -> Report:  # fmt: skip
    """Compare what the providers saw with what the runs and the audit log say."""
    problems: list[str] = []
    records = [r.entry for r in audit.records(TENANT)]
    by_run: dict[str, list[Any]] = {}
    for entry in records:
        by_run.setdefault(entry.run_id, []).append(entry)
    effects = ledger.effects()
    effects_by_run: dict[str, list[Any]] = {}
    for effect in effects:
        effects_by_run.setdefault(effect.run_id, []).append(effect)
    outcomes: Counter[str] = Counter()
    for run_id in run_ids:
        status = run_status(settings, run_id)
        if status.status != "SUCCESS" or status.result is None:
            problems.append(f"{run_id} ended as {status.status}, without a result: "
                            f"{_error_of(settings, run_id)}")  # fmt: skip
            continue
        result = status.result
        outcomes[result["outcome"]] += 1
        entries = by_run.get(run_id, [])
        kinds = Counter(e.kind for e in entries)
        if kinds["run_started"] != 1 or kinds["run_finished"] != 1:
            problems.append(f"{run_id}: {kinds['run_started']} start and "
                            f"{kinds['run_finished']} finish records")  # fmt: skip
        audited = Counter((e.tool, e.outcome) for e in entries if e.kind == "tool_call")
        reported = Counter((c["tool"], c["outcome"]) for c in result["tool_calls"])
        # The audit log may hold more than the run's final record: a step re-run after a
        # kill, after its approval was granted meanwhile, first asked for approval (audited)
        # and then executed. Nothing the run reports may be missing, nothing else may differ.
        missing = reported - audited
        extra = {k: n for k, n in (audited - reported).items() if k[1] != "approval_required"}
        if missing or extra:
            problems.append(f"{run_id}: audit lacks {dict(missing)} and has extra {extra}")
        delivered = Counter(e.kind for e in effects_by_run.get(run_id, []))
        expected = {
            "refund": audited[("issue_refund", "executed")],
            "email": audited[("send_email", "executed")],
        }
        if dict(delivered) != {k: v for k, v in expected.items() if v}:
            problems.append(f"{run_id}: providers delivered {dict(delivered)}, the audit log "
                            f"says {expected}")  # fmt: skip
        if result["outcome"] != "succeeded" and delivered["email"]:
            problems.append(f"{run_id} did not succeed but sent {delivered['email']} email(s)")
    payloads = Counter(json.dumps(e.payload, sort_keys=True) + e.run_id for e in effects)
    problems += [f"one effect under several keys: {p}" for p, n in payloads.items() if n > 1]
    verified = audit.verify()
    if not verified.ok:
        problems.append(f"audit chain does not verify: {verified}")
    return Report(
        runs=len(run_ids), workers=0, kills=0, seconds=0.0, outcomes=dict(outcomes),
        decisions={}, effects=dict(Counter(e.kind for e in effects)),
        repeated_deliveries=sum(e.attempts - 1 for e in effects), problems=problems,
    )  # fmt: skip


def _error_of(settings: Settings, run_id: str) -> str:
    with dbos_client(settings) as client:
        found = client.list_workflows(workflow_ids=[run_id], load_input=False)
    return str(found[0].error)[:500] if found else "no such workflow"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default="", help="Postgres URL; default SQLite")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--home", type=Path, default=Path(f"/tmp/charter-crash-{os.getpid()}"))
    args = parser.parse_args()
    report = campaign(args.home, runs=args.runs, kills=args.kills, workers=args.workers,
                      database_url=args.database_url, seed=args.seed)  # fmt: skip
    print(json.dumps(report.as_dict()))
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
