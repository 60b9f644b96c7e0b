"""Rollback propagation time and run routing overhead.

- Routing: ``Governance.serve`` (deployment read + sticky bucket + cached release charter)
  per run start, p50/p99 in microseconds; and ``Traffic.route`` alone.
- Rollback propagation: a second process routes continuously (as new runs start) while
  this one rolls back a 50/50 rollout; the time from the rollback command's start to the
  first run the other process routes to the stable release. Target (DESIGN.md): <= 1 s.

Run: python benchmarks/governance.py [--database-url URL] [--rounds 20]. Last line JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from charter_examples.support_desk.demo import CHARTER_PATH

from charter import Settings
from charter.core.clock import SystemClock
from charter.core.events import EventBus
from charter.governance.service import Governance
from charter.storage import Database, upgrade

CHARTER = "support-triage"


def _governance(settings: Settings) -> Governance:
    database = Database(settings.database)
    return Governance(database, SystemClock(), EventBus(), settings)


def _setup(settings: Settings, home: Path) -> tuple[str, str]:
    governance = _governance(settings)
    v1, _ = governance.releases.create(CHARTER_PATH, author="alice", message="v1")
    v2_dir = home / "v2"
    shutil.copytree(CHARTER_PATH.parent, v2_dir, ignore=shutil.ignore_patterns("__pycache__"))
    prompt = v2_dir / "prompts" / "support.md"
    prompt.write_text(prompt.read_text(encoding="utf-8") + "\nv2\n", encoding="utf-8")
    v2, _ = governance.releases.create(v2_dir, author="alice", message="v2")
    for release in (v1, v2):
        governance.promotions.promote(release, "dev", by="bob", reason="bench")
    return v1.id, v2.id


def _watcher(settings: Settings, stable: str, ready: Any, seen: Any) -> None:
    """Route a fixed set of users again and again; report when every one gets ``stable``."""
    governance = _governance(settings)
    users = [f"user{n}" for n in range(20)]
    ready.set()
    while True:
        if all(governance.traffic.route(CHARTER, "dev", "acme", u) == stable for u in users):
            seen.put(time.time())
            return


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_us": round(statistics.median(ordered) * 1e6, 1),
        "p99_us": round(ordered[int(0.99 * (len(ordered) - 1))] * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="charter-bench-gov-"))
    settings = Settings(home=home, secrets_dir=home / "s", database_url=args.database_url)
    upgrade(Database(settings.database))
    v1, v2 = _setup(settings, home)
    governance = _governance(settings)
    governance.traffic.set_weights(CHARTER, "dev", {v1: 50, v2: 50}, by="bob", reason="bench")

    route, serve = [], []
    for n in range(2000):
        started = time.perf_counter()
        governance.traffic.route(CHARTER, "dev", "acme", f"u{n}")
        route.append(time.perf_counter() - started)
        started = time.perf_counter()
        governance.serve(CHARTER, "dev", "acme", f"u{n}")
        serve.append(time.perf_counter() - started)

    propagation = []
    context = multiprocessing.get_context("spawn")
    for _ in range(args.rounds):
        ready, seen = context.Event(), context.Queue()
        watcher = context.Process(target=_watcher, args=(settings, v1, ready, seen))
        watcher.start()
        ready.wait(30)
        time.sleep(0.2)
        started = time.time()
        governance.traffic.rollback(CHARTER, "dev", by="bob", reason="bench")
        propagation.append(seen.get(timeout=30) - started)
        watcher.join(10)
        governance.traffic.set_weights(CHARTER, "dev", {v1: 50, v2: 50}, by="bob", reason="again")
    shutil.rmtree(home, ignore_errors=True)
    result = {
        "benchmark": "governance",
        "backend": "postgres" if args.database_url.startswith("postgresql") else "sqlite",
        "route": _percentiles(route),
        "serve": _percentiles(serve),
        "rollback_propagation_ms": {
            "p50": round(statistics.median(propagation) * 1000, 1),
            "max": round(max(propagation) * 1000, 1),
            "target": 1000,
        },
        "cores": os.cpu_count(),
    }
    print(
        f"route p50 {result['route']['p50_us']} us, serve p50 {result['serve']['p50_us']} us; "
        f"rollback reaches new runs in {result['rollback_propagation_ms']['p50']} ms p50"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
