"""``charter eval``: run suites under a charter, gate a release on them, compare reports.

``charter eval SUITE... --charter FILE`` is the main job (the ``run`` subcommand, implied
when the first argument is not a subcommand); ``compare`` and ``redteam`` are beside it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from ruamel.yaml import YAML
from typer.core import TyperGroup

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, fail, stderr
from charter.cli.render_eval import print_comparison, print_report
from charter.contract.loader import Charter
from charter.core.errors import CharterInvalid, UserError
from charter.core.files import write_atomic
from charter.core.settings import Settings
from charter.evaluation.cassette import RecordingModel, ReplayModel
from charter.evaluation.compare import compare_reports
from charter.evaluation.gate import evaluate_gate
from charter.evaluation.placeholder_secrets import PlaceholderSecrets
from charter.evaluation.redteam import generate_security_suite
from charter.evaluation.report import build_report
from charter.evaluation.report_file import read_report, write_reports
from charter.evaluation.runner import EpochResult, EvalOptions, run_suites
from charter.evaluation.suite import Suite, Task, load_suite, load_suites
from charter.evaluation.unenforced import without_enforcement
from charter.execution.model import Model
from charter.runtime import Runtime


class _DefaultRun(TyperGroup):
    """``charter eval a.yaml ...`` means ``charter eval run a.yaml ...``."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultRun,
    help="Evaluate a charter: golden tasks, red-team suites, a release gate, reports.\n\n"
    "charter eval SUITE... --charter FILE runs suites (see 'charter eval run --help').",
    no_args_is_help=True,
)


@app.command("run")
def run(
    suites: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="SUITE...",
            help="Suite files. Default: the golden and redteam suites the charter's evals "
            "section names.",
        ),
    ] = None,
    charter_file: Annotated[
        Path,
        typer.Option("--charter", help="The charter to evaluate.", envvar="CHARTER_EVAL_CHARTER"),
    ] = Path("charter.yaml"),
    epochs: Annotated[
        int,
        typer.Option(
            help="Run each task K times; report pass rate, 95% CI and pass^k.",
            min=1,
            max=100,
            envvar="CHARTER_EVAL_EPOCHS",
        ),
    ] = 1,
    concurrency: Annotated[
        int,
        typer.Option(
            help="Runs in flight at once.", min=1, max=256, envvar="CHARTER_EVAL_CONCURRENCY"
        ),
    ] = 4,
    seed: Annotated[
        int,
        typer.Option(
            help="Base seed; each task's seed derives from it.", envvar="CHARTER_EVAL_SEED"
        ),
    ] = 0,
    gate: Annotated[
        float | None,
        typer.Option(
            help="Fail (exit 1) below this golden pass rate (0..1), on any security "
            "failure, or on a regression against --baseline.",
            min=0.0,
            max=1.0,
            envvar="CHARTER_EVAL_GATE",
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="A previous report.json: a task that passed there must pass now.",
            envvar="CHARTER_EVAL_BASELINE",
        ),
    ] = None,
    no_enforce: Annotated[
        bool,
        typer.Option(
            "--no-enforce",
            help="UNSAFE: run with the charter's policies, constraints "
            "and budgets switched off, to prove the security checks can fail. The "
            "report says so and the gate never passes.",
            envvar="CHARTER_EVAL_NO_ENFORCE",
        ),
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            help="Record the model's responses into cassettes in this directory.",
            envvar="CHARTER_EVAL_RECORD",
        ),
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="Serve model responses from the cassettes in this directory; a "
            "request with no recording stops the eval.",
            envvar="CHARTER_EVAL_REPLAY",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where the reports (report.json, junit.xml, report.html) and the "
            "eval runs' database go. Default: CHARTER_HOME/evals/<time>.",
            envvar="CHARTER_EVAL_OUT",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Run eval suites under a charter, exactly as production enforces it.

    Example: charter eval examples/support_desk/evals/*.yaml
    --charter examples/support_desk/charter.yaml --gate 0.95

    Every task runs in a fresh copy of its fixture, as a governed run in a separate eval
    database (never the production one), with placeholder credentials. Checks read what
    executed. Writes report.json (versioned), junit.xml and report.html.

    Exit codes: 0 the gate passed (without --gate: every task passed); 1 it did not; 2 bad
    input (a suite, charter, baseline or cassette problem): then nothing is written.
    """
    if record is not None and replay is not None:
        fail("give --record or --replay, not both", as_json=as_json)
    try:
        charter = Charter.load(charter_file)
    except CharterInvalid as exc:
        fail(f"{exc}\nrun 'charter validate {charter_file}' for details", as_json=as_json)
    paths = list(suites or _suites_of(charter, as_json))
    try:
        loaded = load_suites(paths)
        problems = [p for suite in loaded for p in suite.problems_with(charter)]
        if problems:
            raise CharterInvalid(problems)
        baseline_report = read_report(baseline) if baseline is not None else None
        governed = without_enforcement(charter) if no_enforce else charter
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    if no_enforce:
        stderr.print(
            "[bold red]UNSAFE:[/] enforcement is off (--no-enforce); these runs are "
            "not protected by the charter",
            soft_wrap=True,
        )
    settings = Settings.from_env()
    target = out or settings.home / "evals" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    options = EvalOptions(epochs=epochs, concurrency=concurrency, seed=seed)
    try:
        report, database = _evaluate(
            governed,
            loaded,
            options,
            settings,
            record=record,
            replay=replay,
            enforcement=not no_enforce,
            show_progress=not as_json,
        )
        if gate is not None:
            verdict = evaluate_gate(report, gate, baseline=baseline_report, baseline_path=baseline)
            report["gate"] = verdict.as_dict()
        written = write_reports(report, target)
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    shutil.move(str(database), target / "runs.sqlite3")
    ok = (
        report["gate"]["passed"]
        if report["gate"]
        else all(t["status"] == "passed" for t in report["tasks"])
    )
    if as_json:
        emit_json(
            {
                "ok": ok,
                "reports": {k: str(v) for k, v in written.items()},
                "runs_database": str(target / "runs.sqlite3"),
                **{k: report[k] for k in ("id", "enforcement", "summary", "gate")},
            }
        )
    else:
        print_report(report)
        for kind, path in written.items():
            console.print(f"{kind}: {path}")
        console.print(
            f"eval runs: {target / 'runs.sqlite3'} (inspect with "
            f"CHARTER_DATABASE_URL=sqlite:///{target / 'runs.sqlite3'} charter runs list)"
        )
    if not ok:
        raise typer.Exit(EXIT_FAILED)


def _suites_of(charter: Charter, as_json: bool) -> list[Path]:
    evals = charter.spec.evals
    named = [getattr(evals, key) for key in ("golden", "redteam")] if evals else []
    paths = [charter.path.parent / p for p in named if p and charter.path is not None]
    if not paths:
        fail(
            "give suite files, or name them in the charter (evals: {golden: ..., redteam: ...})",
            as_json=as_json,
        )
    return paths


def _evaluate(
    charter: Charter,
    suites: Sequence[Suite],
    options: EvalOptions,
    settings: Settings,
    *,
    record: Path | None,
    replay: Path | None,
    enforcement: bool,
    show_progress: bool,
) -> tuple[dict[str, Any], Path]:
    """Run the suites in a scratch eval database; the report, and that database's file.

    The database is created in a temporary directory and only handed back once the eval
    finished, so an eval stopped by bad input leaves nothing behind.
    """
    scratch = Path(tempfile.mkdtemp(prefix="charter-eval-"))
    database = scratch / "runs.sqlite3"
    eval_settings = Settings(
        home=scratch,
        secrets_dir=scratch / "secrets",
        environment="prod",
        database_url=f"sqlite:///{database}",
    )
    spec = charter.spec.model
    started_at = datetime.now(UTC)
    started = time.perf_counter()
    total = sum(len(s.tasks) for s in suites) * options.epochs
    try:
        with Runtime(eval_settings, secret_providers=(PlaceholderSecrets(),)) as runtime:

            def model_for(task: Task, epoch: int, seed: int) -> Model:
                if replay is not None:
                    return ReplayModel(
                        directory=replay, task=task.key, provider=spec.provider, name=spec.name
                    )
                model = runtime.build_model(charter, seed=seed)
                if record is not None:
                    return RecordingModel(model, directory=record, task=task.key)
                return model

            with _progress(total, show_progress) as advance:
                results = asyncio.run(
                    run_suites(
                        charter,
                        suites,
                        run_agent=runtime.run_agent,
                        model_for=model_for,
                        options=options,
                        on_epoch=advance,
                    )
                )
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    report = build_report(
        charter,
        suites,
        results,
        options=options,
        enforcement=enforcement,
        model=f"{spec.provider}:{spec.name}",
        replay=str(replay) if replay else None,
        created_at=started_at,
        duration_seconds=time.perf_counter() - started,
    )
    return report, database


class _progress:
    """A progress bar on stderr (nothing when --json or not wanted)."""

    def __init__(self, total: int, shown: bool) -> None:
        self._bar = (
            Progress(
                TextColumn("eval"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[failed]} failing"),
                console=stderr,
                transient=True,
            )
            if shown
            else None
        )
        self._total = total
        self._failed = 0

    def __enter__(self) -> Any:
        if self._bar is None:
            return None
        self._bar.start()
        task_id = self._bar.add_task("eval", total=self._total, failed=0)

        def advance(_task: Task, result: EpochResult) -> None:
            assert self._bar is not None
            self._failed += 0 if result.passed else 1
            self._bar.update(task_id, advance=1, failed=self._failed)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


@app.command("compare")
def compare(
    old: Annotated[Path, typer.Argument(help="The earlier report.json (e.g. the baseline).")],
    new: Annotated[Path, typer.Argument(help="The later report.json.")],
    show_all: Annotated[
        bool,
        typer.Option(
            "--all",
            help="List every changed task (by default each list shows its first 15).",
            envvar="CHARTER_COMPARE_ALL",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List regressions (passed before, not now) and fixes between two eval reports.

    Exit codes: 0 no regression; 1 at least one; 2 a report cannot be read.
    """
    try:
        comparison = compare_reports(read_report(old), read_report(new))
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    if as_json:
        emit_json({"ok": not comparison.regressions, **comparison.as_dict()})
    else:
        print_comparison(comparison, show_all=show_all)
    if comparison.regressions:
        raise typer.Exit(EXIT_FAILED)


@app.command("redteam")
def redteam(
    golden: Annotated[
        Path,
        typer.Argument(help="The golden suite whose tasks tagged 'redteam' get payloads planted."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the security suite.")],
    name: Annotated[str, typer.Option(help="The generated suite's name.")] = "security",
    variants: Annotated[
        int,
        typer.Option(help="Tasks per payload kind (different fields and tasks).", min=1, max=20),
    ] = 4,
    as_json: JsonOption = False,
) -> None:
    """Generate a security suite: every red-team payload planted into untrusted fields
    (ticket bodies, CRM notes, emails) of golden tasks, checked for the forbidden effect.

    Exit codes: 0 written; 2 bad input (nothing is written).
    """
    try:
        suite = load_suite(golden)
        data = generate_security_suite(suite, name=name, variants=variants)
        text = suite_yaml(data, source=golden)
        write_atomic(out, text)
        load_suite(out)  # what was written must load: a generator bug fails here, loudly
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}", as_json=as_json)
    if as_json:
        emit_json({"ok": True, "path": str(out), "tasks": len(data["tasks"])})
    else:
        console.print(f"wrote {len(data['tasks'])} security tasks to {out}")


def suite_yaml(data: dict[str, Any], *, source: Path) -> str:
    """A generated suite as YAML text, with a header saying how to regenerate it."""
    import io

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 100
    buffer = io.StringIO()
    yaml.dump(json.loads(json.dumps(data, default=_json_number)), buffer)
    header = (
        f"# Generated by: charter eval redteam {source.as_posix()} -o <this file>\n"
        "# Do not edit: change the golden suite or the payloads and regenerate.\n"
    )
    return header + buffer.getvalue()


def _json_number(value: object) -> object:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot write {type(value).__name__} to a suite")
