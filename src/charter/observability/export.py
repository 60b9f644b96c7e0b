"""Charter's tracer provider: where spans go once ``SpanRecorder`` has built them.

Always into Charter's own database (``span_store.py``), for the run inspector; and, when
``CHARTER_OTLP_ENDPOINT`` is set, to an OpenTelemetry collector or backend over OTLP
HTTP/protobuf (Phoenix, Langfuse, Tempo, Datadog...), with ``CHARTER_OTLP_HEADERS``.

Both sit behind a ``BatchSpanProcessor``: a run's thread only appends each finished span to
an in-memory queue (about a microsecond); a background thread writes or sends batches. A
``SimpleSpanProcessor`` would write every span in the run's own thread, one database
transaction per span, in the path of the call that finished it (measured: see
docs/tracing.md). Spans are still *built* in the run's thread (``tracing.py`` says why).

Export can fail (the database is busy, the collector is down, a header is wrong). It never
fails or stops a run: every exporter is wrapped so that it cannot raise, and its spans are
counted in an ``ExportStats`` (exported, failed, the last error without secrets). A span
that reached the local store is not lost when the collector is down; the audit log is the
record either way.
"""

from __future__ import annotations

import logging
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.observability.span_store import SpanStoreExporter
from charter.observability.tracing import PresetIdGenerator
from charter.storage.database import Database

__all__ = [
    "CountingExporter",
    "ExportStats",
    "TraceExport",
    "build_trace_export",
    "parse_otlp_endpoint",
    "parse_otlp_headers",
]

SERVICE_NAME = "charter"
PROJECT_NAME = "charter"  # Phoenix files traces under this project (openinference.project.name)
STORE_DELAY_MS = 1000  # the inspector sees a run's spans about a second after they end
_ERROR_LIMIT = 500

# The OTLP exporter says why a batch failed only in its log (from the thread that exports).
_OTLP_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"


class ExportStats:
    """What one exporter has done: spans exported, spans that failed, the last error.

    Updated by the exporting thread, read by anyone (the CLI, metrics, tests). ``last_error``
    never holds a header value or a database URL.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.exported = 0
        self.failed = 0
        self.last_error = ""
        self._lock = threading.Lock()

    def _count(self, spans: int, error: str | None) -> None:
        with self._lock:
            if error is None:
                self.exported += spans
            else:
                self.failed += spans
                self.last_error = error

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {"exported": self.exported, "failed": self.failed,
                    "last_error": self.last_error}  # fmt: skip

    def __repr__(self) -> str:
        return f"ExportStats({self.name!r}, {self.as_dict()})"


class CountingExporter(SpanExporter):
    """Wraps an exporter so it never raises and every span it is given is counted."""

    def __init__(
        self, inner: SpanExporter, stats: ExportStats, why: Callable[[], str | None]
    ) -> None:
        self._inner = inner
        self._stats = stats
        self._why = why

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        _problem.lines = []
        try:
            result = self._inner.export(spans)
            error = None if result is SpanExportResult.SUCCESS else self._why() or "export failed"
        except Exception as exc:
            result, error = SpanExportResult.FAILURE, f"the exporter raised {type(exc).__name__}"
        self._stats._count(len(spans), error)
        return result

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception as exc:
            self._stats._count(0, f"shutdown failed: {type(exc).__name__}")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis)
        except Exception:
            return False


@dataclass(frozen=True, slots=True)
class TraceExport:
    """A tracer provider wired to Charter's exporters, and what each has done."""

    provider: TracerProvider
    store: ExportStats
    otlp: ExportStats | None  # None: no OTLP endpoint configured

    def stats(self) -> dict[str, dict[str, Any]]:
        """Every exporter's counters, by name (``span_store``, ``otlp``)."""
        found = [self.store] + ([self.otlp] if self.otlp is not None else [])
        return {stats.name: stats.as_dict() for stats in found}

    def flush(self) -> bool:
        """Export every finished span now; waits at most the OTLP timeout per batch."""
        return self.provider.force_flush()

    def shutdown(self) -> None:
        """Flush and stop the exporters (the local store first, then the collector)."""
        self.provider.shutdown()


def build_trace_export(
    settings: Settings,
    database: Database,
    *,
    otlp_timeout_seconds: float | None = None,
) -> TraceExport:
    """Charter's tracer provider, from ``settings``: span store always, OTLP when configured.

    ``otlp_timeout_seconds`` bounds one export request with its retries (OTLP's default is
    10 s, or ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``); it is also the longest a flush or close
    waits for a collector that does not answer.

    Raises:
        UserError: ``otlp_endpoint`` is not an http(s) URL with a host, or ``otlp_headers``
            is not ``key=value,...`` (checked before anything starts).
    """
    exporter: OTLPSpanExporter | None = None
    if settings.otlp_endpoint:
        endpoint = parse_otlp_endpoint(settings.otlp_endpoint)
        headers = parse_otlp_headers(settings.otlp_headers)
        exporter = OTLPSpanExporter(
            endpoint=endpoint, headers=headers, timeout=otlp_timeout_seconds
        )
    elif settings.otlp_headers:
        parse_otlp_headers(settings.otlp_headers)  # still say it is malformed
    provider = TracerProvider(id_generator=PresetIdGenerator(), resource=_resource())
    store_stats = ExportStats("span_store")
    store = SpanStoreExporter(database)
    provider.add_span_processor(
        BatchSpanProcessor(
            CountingExporter(store, store_stats, lambda: store.last_error),
            schedule_delay_millis=STORE_DELAY_MS,
        )
    )
    otlp_stats: ExportStats | None = None
    if exporter is not None:
        otlp_stats = ExportStats("otlp")
        provider.add_span_processor(
            BatchSpanProcessor(
                CountingExporter(
                    exporter, otlp_stats, _otlp_problem(endpoint, settings.otlp_headers)
                )
            )
        )
        _watch_otlp_log()
    return TraceExport(provider, store_stats, otlp_stats)


def parse_otlp_endpoint(raw: str) -> str:
    """The OTLP/HTTP traces URL; a bare ``http(s)://host[:port]`` gets ``/v1/traces``.

    Credentials belong in ``CHARTER_OTLP_HEADERS``: a URL with a user, password or query is
    refused, because URLs end up in logs and error messages.

    Raises:
        UserError: not an http(s) URL with a host (the message never repeats a query or
            password).
    """
    try:
        parts = urllib.parse.urlsplit(raw.strip())
        port_ok = parts.port is None or 0 < parts.port < 65536
    except ValueError:
        parts, port_ok = None, False
    shown = _shown_url(raw)
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(
            f"CHARTER_OTLP_ENDPOINT={shown!r} is not an http(s) URL with a host; use e.g. "
            "http://127.0.0.1:6006/v1/traces (OTLP over HTTP/protobuf)"
        )
    if not port_ok:
        raise UserError(f"CHARTER_OTLP_ENDPOINT={shown!r} has an invalid port")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise UserError(
            f"CHARTER_OTLP_ENDPOINT={shown!r} carries credentials or a query; give only the "
            "URL and put credentials in CHARTER_OTLP_HEADERS (key=value,...)"
        )
    if parts.path in ("", "/"):
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, "/v1/traces", "", ""))
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def parse_otlp_headers(raw: str) -> dict[str, str]:
    """``key=value,key2=value2`` (values URL-decoded, as OTel's own variable) as a dict.

    Raises:
        UserError: an entry is not ``key=value``; the message names the entry by position
            and key, never its value.
    """
    headers: dict[str, str] = {}
    for position, entry in enumerate(raw.split(","), start=1):
        if not entry.strip():
            continue
        key, equals, value = entry.partition("=")
        key = key.strip()
        if not equals or not key or not key.replace("-", "").replace("_", "").isalnum():
            # Without "=" the whole entry may be the value: only a key is ever named.
            named = f" ({key!r})" if equals and key.isprintable() and len(key) < 64 else ""
            raise UserError(
                f"CHARTER_OTLP_HEADERS entry {position}{named} is not key=value; write "
                "headers as key=value,key2=value2 (URL-encode commas in values)"
            )
        headers[key] = urllib.parse.unquote(value.strip())
    return headers


def _resource() -> Resource:
    # Charter's defaults first, so OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES override them
    # (e.g. openinference.project.name=support-prod for a Phoenix project per deployment).
    defaults = Resource.create(
        {"service.name": SERVICE_NAME, "openinference.project.name": PROJECT_NAME}
    )
    return defaults.merge(OTELResourceDetector().detect())


def _shown_url(raw: str) -> str:
    """The URL as it may be shown: password and query replaced."""
    try:
        parts = urllib.parse.urlsplit(raw.strip())
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, "***" if parts.query else "", "")
    )


def _otlp_problem(endpoint: str, raw_headers: str) -> Callable[[], str | None]:
    """Why the last OTLP export failed, from the exporter's log, without any header value.

    The endpoint is named (it holds no credentials: ``parse_otlp_endpoint`` refuses them),
    since the exporter's own words often do not say where it tried.
    """
    decoded = parse_otlp_headers(raw_headers).values()
    raw = (entry.partition("=")[2].strip() for entry in raw_headers.split(","))
    candidates = {*decoded, *raw}
    # Each piece of a value too ("Basic <token>"), in case an error quotes only the token.
    candidates |= {piece for value in candidates for piece in value.split()}
    secrets = sorted((c for c in candidates if len(c) >= 4), key=len, reverse=True)

    def why() -> str | None:
        lines = _problem.lines
        if not lines:
            return None
        # The final word first ("failed ... timeout"), then the cause it gave up on.
        text = lines[-1] if len(lines) == 1 else f"{lines[-1]} (last attempt: {lines[-2]})"
        text = f"{endpoint}: {text}"
        for secret in secrets:
            text = text.replace(secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= _ERROR_LIMIT else text[:_ERROR_LIMIT] + "..."

    return why


class _Problem(threading.local):
    def __init__(self) -> None:
        self.lines: list[str] = []


_problem = _Problem()
"""What the OTLP exporter logged during the current export, in this thread (each processor
exports in its own worker thread, so exporters do not see each other's problems)."""


class _RememberProblem(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            try:
                line = record.getMessage()
            except Exception:  # a record that cannot be formatted: keep its template
                line = str(record.msg)
            _problem.lines = [*_problem.lines[-1:], line]
        return True  # the log line itself is left to the application's logging setup


_watch_lock = threading.Lock()


def _watch_otlp_log() -> None:
    logger = logging.getLogger(_OTLP_LOGGER)
    with _watch_lock:
        if not any(isinstance(f, _RememberProblem) for f in logger.filters):
            logger.addFilter(_RememberProblem())
