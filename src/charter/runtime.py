"""The composition root: one object that wires a process's runs to audit and tracing.

Lower layers never import this module; the CLI, the server and embedding applications do.

Example:
    ```python
    runtime = Runtime(Settings.from_env())
    charter = Charter.load("charter.yaml")
    result = await runtime.run_agent(charter, model, "Handle ticket T-1001",
                                     principal=Principal("alice", "acme"))
    ```
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider

from charter.contract.loader import Charter
from charter.core.clock import Clock, SystemClock
from charter.core.errors import ModelConfigError, UserError
from charter.core.events import EventBus
from charter.core.settings import Settings
from charter.execution.agent import RunResult, run_agent
from charter.execution.approval_store import ApprovalStore, StoreGrants
from charter.execution.approvals import ApprovalGrants, ApprovalInbox, InMemoryGrants
from charter.execution.kill_store import KillSwitchStore
from charter.execution.kill_switch import KillSwitchView
from charter.execution.model import Model
from charter.execution.run import Run, RunServices
from charter.governance.service import Governance
from charter.identity.principal import ENVIRONMENTS, Environment, Principal
from charter.identity.roles import RoleGrants
from charter.identity.secrets import (
    ChainSecretProvider,
    EnvSecretProvider,
    FileSecretProvider,
    Redactor,
    SecretProvider,
)
from charter.observability.audit import AuditLog
from charter.observability.audit_recorder import AuditRecorder
from charter.observability.export import TraceExport, build_trace_export
from charter.observability.runs import RunRecorder, RunStore
from charter.observability.tracing import SpanRecorder
from charter.policy.cedar_engine import CedarEngine
from charter.policy.pricing import ModelPrice, price_for
from charter.storage import Database

__all__ = ["Runtime", "credential_names", "default_secret_providers", "resolve_credentials"]


class Runtime:
    """Process-wide services for runs: audit log, tracing, secrets, kill switches, approvals.

    Everything durable lives in one database (``settings.database``: the SQLite file under
    ``CHARTER_HOME`` by default, Postgres by URL), so every process pointed at it shares the
    audit chain, the kill switches and the approvals inbox.

    Args:
        settings: where state lives; defaults to ``Settings.from_env()``.
        clock: injectable time.
        tracer_provider: an OpenTelemetry SDK provider (its id generator must be a
            ``PresetIdGenerator``); if omitted, Charter's own is built from ``settings``:
            spans to the database's span store, and to ``otlp_endpoint`` when set
            (``observability/export.py``; its counters in ``trace_export``).
        otlp_timeout_seconds: bounds one OTLP export with its retries, and so how long a
            flush or close waits for a collector that does not answer (default 10 s).
        secret_providers: overrides the default chain (environment, then secret files).
        kill_switches: overrides the durable kill switches (e.g. ``KillSwitches()`` in memory).
        approvals: overrides the durable approvals inbox and grants (``InMemoryGrants()``).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock | None = None,
        tracer_provider: TracerProvider | None = None,
        secret_providers: Sequence[SecretProvider] | None = None,
        kill_switches: KillSwitchView | None = None,
        approvals: InMemoryGrants | None = None,
        otlp_timeout_seconds: float | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        clock = clock or SystemClock()
        self.database = Database(self.settings.database)
        self.trace_export: TraceExport | None = None
        try:
            if tracer_provider is None:
                # A bad OTLP endpoint or header is a UserError here, before any run starts.
                self.trace_export = build_trace_export(
                    self.settings, self.database, otlp_timeout_seconds=otlp_timeout_seconds
                )
                tracer_provider = self.trace_export.provider
            self.audit = AuditLog(self.database)
        except BaseException:
            if self.trace_export is not None:
                self.trace_export.shutdown()
            self.database.dispose()
            raise
        self.tracer_provider = tracer_provider
        redactor = Redactor()
        providers = (
            secret_providers
            if secret_providers is not None
            else default_secret_providers(self.settings)
        )
        bus = EventBus()
        # Audit first: if it cannot record, the publisher fails before anything else sees
        # the event, and the caller learns the action was not recorded.
        bus.subscribe(AuditRecorder(self.audit))
        self.run_recorder = RunRecorder(self.database)
        bus.subscribe(self.run_recorder)
        self.runs = RunStore(self.database)
        self.spans = SpanRecorder(self.tracer_provider, content=self.settings.trace_content)
        bus.subscribe(self.spans)
        self.roles = RoleGrants(self.database, clock)
        self.kill_switches = kill_switches or KillSwitchStore(self.database, clock, bus)
        self.approvals = ApprovalStore(self.database, clock, bus, self.roles)
        grants: ApprovalGrants = approvals or StoreGrants(self.approvals)
        inbox: ApprovalInbox = approvals or self.approvals
        self.grants = grants
        self.services = RunServices(
            bus=bus,
            secrets=ChainSecretProvider(providers, redactor),
            redactor=redactor,
            kill_switches=self.kill_switches,
            grants=grants,
            inbox=inbox,
            clock=clock,
            record_content=self.settings.trace_content,
        )
        self._engines: dict[str, CedarEngine] = {}
        self._known_credentials: set[str] = set()
        self._clock = clock
        self._governance: Governance | None = None

    @property
    def governance(self) -> Governance:
        """Releases, promotions, traffic and rollbacks, audited on this runtime's bus."""
        if self._governance is None:
            self._governance = Governance(
                self.database, self._clock, self.services.bus, self.settings
            )
        return self._governance

    def engine_for(self, charter: Charter) -> CedarEngine:
        """The pre-parsed policy engine of ``charter`` (parsed once per charter version)."""
        engine = self._engines.get(charter.content_sha256)
        if engine is None:
            engine = CedarEngine(charter.cedar_text, charter.rules, charter.tools)
            self._engines[charter.content_sha256] = engine
        return engine

    def start_run(
        self,
        charter: Charter,
        principal: Principal,
        *,
        environment: str | None = None,
        resources: Sequence[object] = (),
        model_name: str | None = None,
        run_id: str | None = None,
    ) -> Run:
        """A new run; call tools on it directly, or give it to ``run_agent``.

        ``run_id`` is given by durable execution (the workflow id); otherwise a new one.
        """
        env = environment or self.settings.environment
        if env not in ENVIRONMENTS:
            raise ValueError(f"environment {env!r} must be one of {', '.join(ENVIRONMENTS)}")
        self.know_credentials(charter)
        spec = charter.spec.model
        return Run(
            charter=charter,
            principal=principal,
            environment=env,  # type: ignore[arg-type]
            services=self.services,
            engine=self.engine_for(charter),
            model_name=model_name or f"{spec.provider}:{spec.name}",
            resources=resources,
            run_id=run_id,
        )

    def know_credentials(self, charter: Charter) -> tuple[str, ...]:
        """Resolve the charter's credentials before its first run, so the redactor
        (``services.redactor``) knows their values from the start: a value is otherwise
        learnt only when a tool first uses it, and one appearing earlier (in the user's
        input, copied into an argument) would reach the audit log and traces in clear.

        Returns:
            The credentials that cannot be resolved now (left for their tool calls to
            report): text cannot be checked for them.
        """
        names = credential_names(charter)
        unknown = [name for name in names if name not in self._known_credentials]
        unresolved = resolve_credentials(self.services.secrets, unknown)
        self._known_credentials.update(n for n in unknown if n not in unresolved)
        return unresolved

    async def run_agent(
        self,
        charter: Charter,
        model: Model,
        user_input: str,
        *,
        principal: Principal,
        environment: Environment | None = None,
        resources: Sequence[object] = (),
        max_steps: int = 24,
    ) -> RunResult:
        """Run the built-in agent loop for ``user_input`` under ``charter``."""
        run = self.start_run(
            charter,
            principal,
            environment=environment,
            resources=resources,
            model_name=f"{model.provider}:{model.name}",
        )
        return await run_agent(
            run, model, user_input, price=self.price_for(charter), max_steps=max_steps
        )

    def price_for(self, charter: Charter) -> ModelPrice | None:
        """The price the charter's model is charged at; fails if a USD budget needs one."""
        spec = charter.spec.model
        provider, name = (
            spec.priced_as.split(":", 1) if spec.priced_as else (spec.provider, spec.name)
        )
        try:
            return price_for(provider, name)
        except ModelConfigError:
            if charter.spec.budgets.max_usd_per_run is not None:
                raise
            return None

    def build_model(self, charter: Charter, *, seed: int | None = None, **kwargs: Any) -> Model:
        """Instantiate the charter's model. Scripted models come from their factory.

        ``seed`` goes to a factory that takes one (evals derive one per run, so a stochastic
        model replays exactly); a factory without a ``seed`` parameter is built without it.
        """
        spec = charter.spec.model
        if spec.provider != "scripted" or spec.factory is None:
            raise ModelConfigError(
                f"provider {spec.provider!r} has no built-in adapter in this version; use a "
                "scripted model (provider: scripted, factory: 'module:attribute') or pass a "
                "Model object to run_agent"
            )
        module_name, _, attribute = spec.factory.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute or "model")
        if seed is not None and _takes_seed(factory):
            kwargs["seed"] = seed
        model = factory(**kwargs)
        if not isinstance(model, Model):
            raise ModelConfigError(f"{spec.factory} did not build a Model (got {type(model)})")
        return model

    def toolkit_resources(self, charter: Charter) -> tuple[object, ...]:
        """Per-run resources from the charter's toolkits.

        A toolkit module may define ``make_resources() -> Sequence[object]``; it is called
        once per run so each run gets fresh clients (or, in the example, a fresh desk).
        """
        resources: list[object] = []
        for module_name in charter.spec.toolkit:
            factory = getattr(importlib.import_module(module_name), "make_resources", None)
            if callable(factory):
                resources.extend(factory())
        return tuple(resources)

    def flush_traces(self) -> bool:
        """Export every finished span now; False if a processor did not finish in time.

        With Charter's own provider this waits for the span store, and for the OTLP
        endpoint at most its export timeout per batch (a dead collector is counted in
        ``trace_export_stats``, never raised).
        """
        return self.tracer_provider.force_flush()

    def trace_export_stats(self) -> dict[str, dict[str, Any]]:
        """Spans exported and failed per exporter (``span_store``, ``otlp``), with the last
        error (never a header value); empty when the caller passed its own provider."""
        return self.trace_export.stats() if self.trace_export is not None else {}

    def close(self) -> None:
        if isinstance(self.kill_switches, KillSwitchStore):
            self.kill_switches.close()
        self.audit.close()
        self.tracer_provider.shutdown()
        self.database.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_secret_providers(settings: Settings) -> tuple[SecretProvider, ...]:
    """Where credentials come from unless a caller says otherwise: ``CHARTER_SECRET_*``,
    then one file per credential in ``settings.secrets_dir``."""
    return (EnvSecretProvider(), FileSecretProvider(settings.secrets_dir))


def credential_names(charter: Charter) -> tuple[str, ...]:
    """The credentials ``charter``'s tools use, each once, sorted."""
    return tuple(sorted({d.credential for d in charter.spec.tools.values() if d.credential}))


def resolve_credentials(secrets: ChainSecretProvider, names: Sequence[str]) -> tuple[str, ...]:
    """Resolve each of ``names`` (which registers its value with the chain's redactor).

    Returns:
        The names that cannot be resolved: missing, or refused (a secret file others can
        read); their tool calls report why.
    """
    unresolved = []
    for name in names:
        try:
            secrets.resolve(name)
        except UserError:
            unresolved.append(name)
    return tuple(unresolved)


def _takes_seed(factory: Any) -> bool:
    try:
        return "seed" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
