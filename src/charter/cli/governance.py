"""Governance commands: releases, promotion, rollouts, rollback and the changelog.

Each is a thin layer over ``charter.governance.service.Governance`` (``Runtime.governance``):
the rules (eval evidence, separation of duties, weights, the last good release) live there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from charter.cli.output import EXIT_FAILED, JsonOption, console, emit_json, fail, tell_left_out
from charter.cli.state import open_state
from charter.core.clock import SystemClock
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.evaluation.report_file import read_report
from charter.governance.service import Governance
from charter.runtime import Runtime

# A person acting on governance is an operator, like an approver or whoever pulls a kill
# switch: CHARTER_USER names the user a run acts for, and read here it would make that user
# the promoter (and "prod needs a second person" a formality).
AsOption = Annotated[
    str, typer.Option("--as", help="Who does this (recorded).", envvar="CHARTER_OPERATOR")
]
ReasonOption = Annotated[
    str, typer.Option("--reason", help="Why (recorded in the changelog and audit log).")
]
EnvOption = Annotated[
    str, typer.Option("--env", help="dev, staging or prod.", envvar="CHARTER_ENVIRONMENT")
]

release_app = typer.Typer(
    help="Immutable, content-addressed releases of a charter.", no_args_is_help=True
)
rollout_app = typer.Typer(
    help="What each environment serves: traffic weights and rollouts.", no_args_is_help=True
)


@contextmanager
def _governance(as_json: bool) -> Iterator[Governance]:
    """Governance for a command that changes it: audited on a runtime's bus."""
    try:
        with Runtime(Settings.from_env()) as runtime:
            yield runtime.governance
    except UserError as exc:
        fail(str(exc), as_json=as_json)


@contextmanager
def _reading(as_json: bool) -> Iterator[Governance]:
    """Governance for a command that only reads: on the database opened read-only, so it
    works on a read-only mount, an archived copy or a SELECT-only role, and creates nothing
    (no database where there is none: that is an error saying where it looked)."""
    with open_state(as_json, must_exist=True, read_only=True) as state:
        try:
            yield Governance(state.database, SystemClock(), state.bus, Settings.from_env())
        except UserError as exc:
            fail(str(exc), as_json=as_json)


# -- releases ------------------------------------------------------------------------------


@release_app.command("create")
def release_create(
    path: Annotated[
        Path,
        typer.Argument(
            metavar="CHARTER_DIR", help="A charter directory (with charter.yaml) or a charter file."
        ),
    ],
    author: AsOption,
    message: Annotated[str, typer.Option("--message", "-m", help="What changed and why.")],
    as_json: JsonOption = False,
) -> None:
    """Release the charter: its file, prompt, policies, model settings and tool schemas,
    hashed. The same content twice is the same release.

    Exit codes: 0 created (or already released); 2 bad input.
    """
    with _governance(as_json) as governance:
        release, created = governance.releases.create(path, author=author, message=message)
    if as_json:
        emit_json({"ok": True, "created": created, **release.as_dict()})
        return
    what = "created" if created else "already released as"
    console.print(f"{what} {release.label} ({release.id})")


@release_app.command("list")
def release_list(
    charter: Annotated[str | None, typer.Option(help="Only this charter's releases.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Every release, oldest first."""
    with _reading(as_json) as governance:
        releases = governance.releases.list(charter)
    if as_json:
        emit_json([r.as_dict() for r in releases])
        return
    table = Table("release", "id", "author", "created", "message")
    for r in releases:
        table.add_row(
            r.label,
            r.id[:12],
            escape(r.author),
            r.created_at.strftime("%Y-%m-%d %H:%M"),
            escape(r.message[:60]),
        )
    console.print(table)


@release_app.command("show")
def release_show(
    ref: Annotated[str, typer.Argument(help="Id, id prefix, or name@vN.")],
    as_json: JsonOption = False,
) -> None:
    """A release: who made it and why, its files, where it is promoted and serving."""
    with _reading(as_json) as governance:
        release = governance.releases.get(ref)
        promotions = governance.promotions.of_release(release.id)
    data = {**release.as_dict(), "promotions": [p.as_dict() for p in promotions]}
    if as_json:
        emit_json(data)
        return
    console.print(f"[bold]{release.label}[/] {release.id}")
    console.print(
        f"by {escape(release.author)} at {release.created_at.isoformat()}: "
        f"{escape(release.message)}"
    )
    console.print("files: " + ", ".join(sorted(release.bundle["files"])))
    for p in promotions:
        console.print(
            f"promoted to {p.environment} by {escape(p.promoted_by)} at "
            f"{p.promoted_at.isoformat()}: {escape(p.reason)}"
        )


@release_app.command("diff")
def release_diff(
    old: Annotated[str, typer.Argument(help="The earlier release: id, prefix or name@vN.")],
    new: Annotated[str, typer.Argument(help="The later release.")],
    as_json: JsonOption = False,
) -> None:
    """What changed between two releases: prompt text, model, tool schemas, policies and
    budgets; loosened rules (a raised threshold, a removed deny, a larger budget) first."""
    from charter.governance.diff import diff_releases

    with _reading(as_json) as governance:
        diff = diff_releases(governance.releases.get(old), governance.releases.get(new))
    if as_json:
        emit_json(diff.as_dict())
        return
    for line in diff.lines():
        console.print(escape(line), soft_wrap=True, highlight=False)


# -- promotion -----------------------------------------------------------------------------


def promote(
    ref: Annotated[str, typer.Argument(metavar="RELEASE", help="Id, id prefix, or name@vN.")],
    to: Annotated[str, typer.Option("--to", help="The environment: dev, staging or prod.")],
    by: AsOption,
    report: Annotated[
        Path | None,
        typer.Option(
            help="The report.json of a passing 'charter eval --gate' of exactly this "
            "release (required for protected environments)."
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Promote a release into an environment. Protected environments (staging, prod by
    default) need a passing eval report for this exact release; prod needs a promoter other
    than the release's author. Every refusal says why and changes nothing.

    The first release promoted into an environment serves it; later ones are rolled out
    with 'charter rollout'.

    Exit codes: 0 promoted; 1 refused by a rule; 2 bad input.
    """
    from charter.governance.promotion import PromotionRefused

    with _governance(as_json) as governance:
        release = governance.releases.get(ref)
        try:
            evaluated = read_report(report) if report is not None else None
            promotion = governance.promotions.promote(
                release, to, by=by, reason=reason, report=evaluated, report_path=report
            )
        except PromotionRefused as exc:
            fail(str(exc), code=EXIT_FAILED, as_json=as_json)
    if as_json:
        emit_json({"ok": True, **promotion.as_dict()})
        return
    serving = (
        " and it now serves all traffic there"
        if promotion.serving
        else (
            f"; roll it out with: charter rollout start {release.charter_name} --env {to} "
            f"{release.label}"
        )
    )
    console.print(f"promoted {release.label} to {to}{serving}", soft_wrap=True)


# -- traffic -------------------------------------------------------------------------------


def _weights(governance: Governance, charter: str, pairs: list[str]) -> dict[str, int]:
    weights: dict[str, int] = {}
    for pair in pairs:
        ref, sep, percent = pair.partition("=")
        if not sep or not percent.strip().isdigit():
            raise UserError(f"{pair!r} must be RELEASE=PERCENT, like v7=5")
        release = governance.releases.get(ref.strip(), charter_name=charter)
        if release.charter_name != charter:
            raise UserError(f"{ref} is a release of {release.charter_name!r}, not {charter!r}")
        if release.id in weights:
            raise UserError(f"{ref} is given twice")
        weights[release.id] = int(percent)
    return weights


def _show(governance: Governance, data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json({"ok": True, **data})
    else:
        _print_deployment(governance, data)


def _print_deployment(governance: Governance, data: dict[str, Any]) -> None:
    labels = governance.labels(data["charter"])
    shares = ", ".join(f"{labels.get(r, r[:12])}={w}%" for r, w in data["weights"].items())
    console.print(
        f"{data['charter']} in {data['environment']}: {shares} "
        f"(stable {labels.get(data['stable'], data['stable'][:12])}"
        + (f", candidate {labels.get(data['candidate'], '')}" if data["candidate"] else "")
        + ")"
    )


@rollout_app.command("set")
def rollout_set(
    charter: Annotated[str, typer.Argument(help="The charter's name.")],
    weights: Annotated[
        list[str], typer.Argument(metavar="RELEASE=PERCENT...", help="e.g. v7=5 v6=95 (sum 100).")
    ],
    env: EnvOption,
    by: AsOption,
    reason: ReasonOption,
    as_json: JsonOption = False,
) -> None:
    """Set traffic weights by hand: e.g. charter rollout set support-triage --env prod
    v7=5 v6=95. Users stick to their release as weights change."""
    with _governance(as_json) as governance:
        deployment = governance.traffic.set_weights(
            charter,
            env,
            _weights(governance, charter, weights),
            by=by,
            reason=reason,
            labels=governance.labels(charter),
        )
        _show(governance, deployment.as_dict(), as_json)


@rollout_app.command("start")
def rollout_start(
    charter: Annotated[str, typer.Argument(help="The charter's name.")],
    release: Annotated[str, typer.Argument(help="The candidate: vN, name@vN or id.")],
    env: EnvOption,
    by: AsOption,
    reason: ReasonOption,
    as_json: JsonOption = False,
) -> None:
    """Start a staged rollout at the first step of the stable charter's rollout plan
    (default 5 -> 25 -> 50 -> 100)."""
    with _governance(as_json) as governance:
        candidate = governance.releases.get(release, charter_name=charter)
        plan = _stable_plan(governance, charter, env)
        deployment = governance.traffic.start_rollout(
            charter,
            env,
            candidate.id,
            first_step=plan[0],
            by=by,
            reason=reason,
            labels=governance.labels(charter),
        )
        _show(governance, deployment.as_dict(), as_json)


@rollout_app.command("advance")
def rollout_advance(
    charter: Annotated[str, typer.Argument(help="The charter's name.")],
    env: EnvOption,
    by: AsOption,
    reason: ReasonOption,
    as_json: JsonOption = False,
) -> None:
    """Move the candidate to the next step of the plan; at 100% it becomes stable."""
    with _governance(as_json) as governance:
        deployment = governance.traffic.advance(
            charter,
            env,
            _stable_plan(governance, charter, env),
            by=by,
            reason=reason,
            labels=governance.labels(charter),
        )
        _show(governance, deployment.as_dict(), as_json)


def _stable_plan(governance: Governance, charter: str, env: str) -> list[int]:
    return list(governance.rollout_spec(governance.traffic.require(charter, env)).plan)


@rollout_app.command("status")
def rollout_status(
    charter: Annotated[str, typer.Argument(help="The charter's name.")],
    env: EnvOption,
    as_json: JsonOption = False,
) -> None:
    """What serves the environment now and, during a rollout, how the guard sees it."""
    with _reading(as_json) as governance:
        deployment = governance.traffic.require(charter, env)
        verdict = (
            governance.guard(charter, env) if deployment.candidate_release is not None else None
        )
        data = {**deployment.as_dict(), "guard": verdict.as_dict() if verdict else None}
        if as_json:
            emit_json(data)
            return
        _print_deployment(governance, data)
        if verdict is not None:
            for reason in verdict.reasons or ("guards hold",):
                console.print(f"  guard: {escape(reason)}")


@rollout_app.command("tick")
def rollout_tick(
    charter: Annotated[str, typer.Argument(help="The charter's name.")],
    env: EnvOption,
    as_json: JsonOption = False,
) -> None:
    """Run the rollout guard once (e.g. every minute from cron): roll back on a breach,
    advance when the plan's schedule says so and the guards hold.

    Exit codes: 0 held or advanced; 1 rolled back; 2 bad input.
    """
    with _governance(as_json) as governance:
        result = governance.tick(charter, env)
        if as_json:
            emit_json(result.as_dict())
        else:
            console.print(f"{result.action}: {escape(result.why)}", soft_wrap=True)
            _print_deployment(governance, result.deployment.as_dict())
    if result.action == "rolled_back":
        raise typer.Exit(EXIT_FAILED)


def rollback(
    charter: Annotated[str, typer.Argument(help="The charter's name.")],
    env: EnvOption,
    by: AsOption,
    reason: ReasonOption,
    as_json: JsonOption = False,
) -> None:
    """All traffic back to the last good release, now: the stable one during a rollout,
    otherwise the one that served before. New runs are served by it at once.

    Exit codes: 0 rolled back; 2 nothing to roll back to (nothing is changed).
    """
    with _governance(as_json) as governance:
        deployment = governance.traffic.rollback(
            charter, env, by=by, reason=reason, labels=governance.labels(charter)
        )
        _show(governance, deployment.as_dict(), as_json)


def changelog(
    charter: Annotated[str | None, typer.Option(help="Only this charter.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="Only this environment.")] = None,
    limit: Annotated[int, typer.Option("-n", help="How many of the latest.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Every governance action, oldest first: releases, promotions, traffic changes,
    rollbacks (by people and by the rollout guard), with who, when and why."""
    with _reading(as_json) as governance:
        entries = governance.log.history(charter_name=charter, environment=env, limit=limit)
        total = governance.log.count(charter_name=charter, environment=env)
        labels = {name: governance.labels(name) for name in {e.charter_name for e in entries}}
    if as_json:
        emit_json([e.as_dict() for e in entries])
        return
    table = Table("when", "charter", "env", "action", "release", "by", "why")
    for e in entries:
        release = labels[e.charter_name].get(e.release_id or "", (e.release_id or "")[:12])
        table.add_row(
            e.at.strftime("%Y-%m-%d %H:%M:%S"),
            e.charter_name,
            e.environment or "",
            e.action,
            release,
            escape(e.actor),
            escape(e.reason[:80]),
        )
    console.print(table)
    tell_left_out(len(entries), total, "entries")


def whatif(
    candidate: Annotated[
        Path,
        typer.Argument(
            metavar="CANDIDATE",
            help="The candidate charter (file or directory), or a release name@vN.",
        ),
    ],
    against: Annotated[
        str,
        typer.Option(
            "--against",
            help="The environment whose recorded runs are replayed: dev, staging or prod.",
        ),
    ],
    last: Annotated[
        int, typer.Option(help="How many of its latest runs.", min=1, max=10_000)
    ] = 100,
    as_json: JsonOption = False,
) -> None:
    """Replay the tool calls of the last N recorded runs through a candidate's policies and
    budgets (no tool runs, nothing is written) and list the decisions that change: newly
    denied, newly approval-required, newly allowed, with examples.

    Exit codes: 0 nothing changes; 1 some decisions change; 2 bad input.
    """
    from charter.contract.loader import Charter
    from charter.core.errors import CharterInvalid
    from charter.governance.releases import charter_file_of
    from charter.governance.whatif import what_if

    with _reading(as_json) as governance:
        try:
            if candidate.exists():
                charter = Charter.load(charter_file_of(candidate))
            else:
                charter = governance.releases.charter_of(governance.releases.get(str(candidate)))
        except CharterInvalid as exc:
            fail(str(exc), as_json=as_json)
        report = what_if(charter, governance.database, environment=against, last=last)
    if as_json:
        emit_json(report.as_dict())
    else:
        _print_whatif(report.as_dict())
    if report.changed:
        raise typer.Exit(EXIT_FAILED)


_EXAMPLES = 5  # changed decisions shown per kind; --json has them all


def _print_whatif(data: dict[str, Any]) -> None:
    console.print(
        f"replayed {data['calls_replayed']} calls of {data['runs_replayed']} runs in "
        f"{data['environment']} through {data['charter_name']} ({data['candidate_sha256'][:12]})"
    )
    for key, title in (
        ("newly_denied", "newly denied"),
        ("newly_approval_required", "newly approval-required"),
        ("newly_allowed", "newly allowed"),
    ):
        changes = data[key]
        console.print(f"[bold]{title}[/]: {len(changes)}")
        for change in changes[:_EXAMPLES]:
            console.print(
                f"  {change['run_id']} {change['tool']}({escape(str(change['arguments']))[:120]}): "
                f"{change['old_verdict']} -> {change['new_verdict']} "
                f"[{escape(str(change['new_rule']))}]",
                soft_wrap=True,
            )
        if len(changes) > _EXAMPLES:
            console.print(f"  ... and {len(changes) - _EXAMPLES} more (use --json to list them)")
    for note in [*data.get("notes", []), *data.get("assumptions", [])]:
        console.print(f"  note: {escape(str(note))}", soft_wrap=True)


autonomy_app = typer.Typer(
    help="Earned autonomy: when a tool may run without approval.", no_args_is_help=True
)


@autonomy_app.command("report")
def autonomy(
    charter_file: Annotated[
        Path, typer.Argument(metavar="CHARTER", help="The charter file (or directory).")
    ],
    report: Annotated[
        Path | None, typer.Option(help="An eval report.json of this charter, as evidence.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only decisions in this window, e.g. 30d.")
    ] = None,
    write: Annotated[
        Path | None,
        typer.Option(
            help="Write the proposed charter (with the moves "
            "made) into this new directory, ready for "
            "'charter release create'."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per tool that needs approval (or has an autonomy rule): the humans' decisions and the
    eval evidence, and a proposed move to autonomous (or back) when the charter's thresholds
    are met. A move is never made here: --write produces a new charter to release.

    Exit codes: 0 nothing to move; 1 a move is proposed; 2 bad input.
    """
    import shutil
    from datetime import timedelta

    from charter.contract.loader import Charter
    from charter.contract.schema import parse_window
    from charter.core.errors import CharterInvalid
    from charter.governance.autonomy import autonomy_report, proposed_charter_text
    from charter.governance.releases import charter_file_of

    with _reading(as_json) as governance:
        try:
            charter = Charter.load(charter_file_of(charter_file))
            window_start = (
                governance.clock.now() - timedelta(seconds=parse_window(since)) if since else None
            )
        except (CharterInvalid, ValueError) as exc:
            fail(str(exc), as_json=as_json)
        evidence = read_report(report) if report is not None else None
        result = autonomy_report(
            charter,
            governance.database,
            since=window_start,
            eval_report=evidence,
            clock=governance.clock,
        )
        written = None
        if write is not None and result.moves:
            text = proposed_charter_text(charter, result)
            if text is None or charter.path is None:
                fail("nothing to write: the report proposes no move", as_json=as_json)
            if write.exists():
                fail(f"{write} exists; --write needs a new directory", as_json=as_json)
            shutil.copytree(
                charter.path.parent, write, ignore=shutil.ignore_patterns("__pycache__", "*.py")
            )
            (write / charter.path.name).write_text(text, encoding="utf-8")
            written = str(write / charter.path.name)
    data = {**result.as_dict(), "written": written}
    if as_json:
        emit_json(data)
    else:
        for tool in data["tools"]:
            console.print(
                f"[bold]{tool['tool']}[/]: {tool['proposal']} "
                f"({escape('; '.join(tool['reasons']))})",
                soft_wrap=True,
            )
        for note in data.get("notes", []):
            console.print(f"  note: {escape(str(note))}", soft_wrap=True)
        if written:
            console.print(
                f"proposed charter written to {written}: release it with "
                f"'charter release create {write}'"
            )
    if result.moves:
        raise typer.Exit(EXIT_FAILED)
