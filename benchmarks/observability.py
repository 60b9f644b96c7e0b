"""What observability costs: tracing per tool call, a metrics scrape, span store ingest.

- Per tool call: the guarded call of ``guarded_call.py`` with spans recorded into the span
  store (Charter's default: a ``BatchSpanProcessor`` writing to the database) against the same
  call with the span recorder switched off. Blocks of calls alternate between the two
  runtimes so drift hits both alike. Metrics add nothing per call: they are computed from the
  database when Prometheus scrapes (``observability/metrics.py``), so the scrape is timed
  instead, over the database the calls left behind.
- Span store ingest: finished spans written by ``SpanStoreExporter`` in batches of 512, on
  SQLite and (if CHARTER_BENCH_POSTGRES_URL names an admin URL) Postgres.

Run: python benchmarks/observability.py [--iterations N]. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from charter import Charter, Runtime, Settings
from charter.identity.secrets import EnvSecretProvider
from charter.observability.metrics import render_metrics
from charter.observability.span_store import SpanStoreExporter
from charter.storage import Database, upgrade
from guarded_call import CHARTER, _guarded, _summary, lookup_order, lookup_order_sync
from scratch_db import scratch_postgres

_BLOCK = 250
_BATCH = 512


def _runtime(home: Path) -> Runtime:
    return Runtime(Settings(home=home, secrets_dir=home / "secrets"),
                   secret_providers=[EnvSecretProvider({})])  # fmt: skip


def _per_call(charter: Charter, home: Path, n: int) -> dict[str, Any]:
    traced, untraced = _runtime(home / "traced"), _runtime(home / "untraced")
    # The recorder stays subscribed but builds nothing: the pipeline without tracing.
    untraced.spans.record = lambda event: None  # type: ignore[method-assign]
    try:
        for runtime in (traced, untraced):
            asyncio.run(_guarded(runtime, charter, "lookup_order", 500))  # warm up
        with_spans: list[int] = []
        without: list[int] = []
        for _ in range(max(1, n // _BLOCK)):
            with_spans += asyncio.run(_guarded(traced, charter, "lookup_order", _BLOCK))
            without += asyncio.run(_guarded(untraced, charter, "lookup_order", _BLOCK))
        traced.flush_traces()
        start = time.perf_counter()
        exposition = render_metrics(traced.database)
        scrape_ms = (time.perf_counter() - start) * 1000
        calls_in_db = traced.audit.verify().records_checked
    finally:
        traced.close()
        untraced.close()
    on, off = _summary(with_spans), _summary(without)
    return {
        "guarded_call_traced": on,
        "guarded_call_untraced": off,
        "tracing_overhead_p50_us": round(on["p50_us"] - off["p50_us"], 2),
        "metrics_overhead_per_call_us": 0.0,
        "metrics_scrape_ms": round(scrape_ms, 1),
        "metrics_scrape_over_audit_records": calls_in_db,
        "metrics_series": sum(1 for line in exposition.splitlines() if not line.startswith("#")),
    }


def _spans(count: int) -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(count):
        with tracer.start_as_current_span("execute_tool lookup_order") as span:
            span.set_attributes(
                {
                    "gen_ai.tool.name": "lookup_order",
                    "gen_ai.operation.name": "execute_tool",
                    "charter.run_id": f"run_{i // 8}",
                    "charter.policy.rule_id": "tools.lookup_order",
                }
            )
    return list(memory.get_finished_spans())


def _ingest(url: str, spans: list[ReadableSpan]) -> float:
    database = Database(url)
    try:
        upgrade(database)
        exporter = SpanStoreExporter(database)
        start = time.perf_counter()
        for i in range(0, len(spans), _BATCH):
            exporter.export(spans[i : i + _BATCH])
        seconds = time.perf_counter() - start
    finally:
        database.dispose()
    return round(len(spans) / seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=4000)
    parser.add_argument("--spans", type=int, default=20_000)
    options = parser.parse_args()
    figures: dict[str, Any] = {"benchmark": "observability", "iterations": options.iterations}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        (home / "prompt.md").write_text("You look up orders.", encoding="utf-8")
        (home / "charter.yaml").write_text(CHARTER, encoding="utf-8")
        charter = Charter.load(home / "charter.yaml", tools=[lookup_order, lookup_order_sync])
        rounds = [_per_call(charter, home / f"r{i}", options.iterations) for i in range(2)]
        figures.update(min(rounds, key=lambda r: r["tracing_overhead_p50_us"]))
        figures["tracing_overhead_p50_us_rounds"] = [r["tracing_overhead_p50_us"] for r in rounds]
        spans = _spans(options.spans)
        ingest = {"sqlite": _ingest(f"sqlite:///{home / 'ingest.sqlite3'}", spans)}
        admin = os.environ.get("CHARTER_BENCH_POSTGRES_URL")
        if admin:
            with scratch_postgres(admin) as url:
                ingest["postgres"] = _ingest(url, spans)
        figures["span_store_ingest_spans_per_second"] = ingest
    figures["target_tracing_overhead_p50_us"] = 20
    figures["median_of_rounds_us"] = statistics.median(figures["tracing_overhead_p50_us_rounds"])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
