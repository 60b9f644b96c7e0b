"""An eval report as one self-contained HTML page, for people.

The page is a single file with inline CSS and no script, font, image or link to anything
outside it: it is opened from CI artifacts and laptops, often offline, and a report that
phones home on opening would leak which agent was evaluated. Per-task detail uses
``<details>``, which needs no JavaScript.

Everything taken from the report is escaped: task ids, check details and attack payloads are
attacker-controlled text (security tasks plant injections on purpose), and a report that
executed them when opened would be the attack succeeding one step later.

A report whose ``enforcement`` is not exactly ``true`` gets a red banner: results measured
with the tool layer switched off say nothing about the charter's protection, and the page
must not be mistaken for one that does.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

__all__ = ["UNSAFE_BANNER", "html_report"]

UNSAFE_BANNER: Final = (
    "UNSAFE: enforcement was switched off (--no-enforce); "
    "these results say nothing about the charter's protection"
)

_KIND_ORDER: Final = ("golden", "security")

# Control characters (other than tab, newline, carriage return), lone surrogates and the two
# noncharacters are not text; html.escape leaves them, and a NUL in a page is a parse error.
_NOT_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")

_CSS: Final = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 1rem 2rem; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.6rem; margin-bottom: .25rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
code, pre { font-family: ui-monospace, monospace; font-size: 12px; }
pre { white-space: pre-wrap; word-break: break-word; background: #f6f6f6; padding: .4rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; word-break: break-all; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.unsafe { background: #b00020; color: #fff; font-size: 1.3rem; font-weight: 700;
          padding: 1rem; margin: 1rem 0; border-radius: 4px; }
.gate { padding: .6rem 1rem; border-radius: 4px; margin: 1rem 0; }
.gate.pass { background: #e3f6e8; border: 1px solid #1e7d32; }
.gate.fail { background: #fde7e9; border: 1px solid #b00020; }
.status { font-weight: 700; padding: 0 .35rem; border-radius: 3px; color: #fff; }
.status.passed { background: #1e7d32; }
.status.failed { background: #b00020; }
.status.flaky { background: #b26a00; }
.status.error { background: #5b2a86; }
.ep { display: inline-block; margin: 0 .2rem .2rem 0; padding: 0 .3rem; border-radius: 3px;
      font-size: 12px; }
.ep.ok { background: #e3f6e8; }
.ep.bad { background: #fde7e9; }
details summary { cursor: pointer; }
"""


def html_report(report: Mapping[str, Any]) -> str:
    """Render an eval report (the JSON report's shape) as a self-contained HTML page.

    Args:
        report: The eval report.

    Returns:
        The page, to be written as UTF-8.

    Raises:
        KeyError: If the report lacks a key the page needs.
    """
    charter = report["charter"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Charter eval: {_e(charter['name'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        _header(report),
    ]
    if report.get("enforcement") is not True:
        # Anything but an explicit true is treated as unsafe: fail closed on the warning too.
        parts.append(f'<div class="unsafe" role="alert">{_e(UNSAFE_BANNER)}</div>')
    if report.get("gate"):
        parts.append(_gate(report["gate"]))
    parts.append(_summary(report["summary"]))
    for suite, tasks in _suites(report):
        parts.append(_suite(suite, tasks))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _e(value: object) -> str:
    """Any value as escaped HTML text (quotes too, so it is safe in attributes); None is
    blank (a report has nulls where something does not apply, e.g. no charter path)."""
    text = "" if value is None else str(value)
    return html.escape(_NOT_TEXT.sub("", text), quote=True)


def _header(report: Mapping[str, Any]) -> str:
    charter = report["charter"]
    rows = [
        ("charter", charter["name"]),
        ("charter file", charter.get("path", "")),
        ("charter sha256", charter["sha256"]),
        ("report", report.get("id", "")),
        ("created", report.get("created_at", "")),
        ("enforcement", "on" if report.get("enforcement") is True else "OFF"),
        ("model", report.get("model", "")),
        ("epochs", report.get("epochs", "")),
        ("seed", report.get("seed", "")),
        ("concurrency", report.get("concurrency", "")),
        ("replay", report.get("replay") or "no"),
        ("duration", f"{float(report.get('duration_seconds') or 0.0):.1f} s"),
    ]
    listing = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<header><h1>Charter eval report</h1><dl class="meta">{listing}</dl></header>'


def _gate(gate: Mapping[str, Any]) -> str:
    passed = gate.get("passed") is True
    verdict = "GATE PASSED" if passed else "GATE FAILED"
    line = (
        f"<strong>{verdict}</strong>: {_e(gate.get('measure', ''))} {_pct(gate.get('value'))}"
        f" against threshold {_pct(gate.get('threshold'))}"
    )
    reasons = "".join(f"<li>{_e(r)}</li>" for r in gate.get("reasons") or ())
    baseline = gate.get("baseline")
    against = ""
    if baseline:
        where = f" ({_e(baseline['path'])})" if baseline.get("path") else ""
        against = f"<p>baseline: {_e(baseline.get('id'))}{where}</p>"
    css = "pass" if passed else "fail"
    return f'<section class="gate {css}"><p>{line}</p><ul>{reasons}</ul>{against}</section>'


def _summary(summary: Mapping[str, Mapping[str, Any]]) -> str:
    kinds = [k for k in _KIND_ORDER if k in summary] + sorted(
        k for k in summary if k not in _KIND_ORDER
    )
    head = (
        "<tr><th>kind</th><th>tasks</th><th>passed</th><th>failed</th><th>flaky</th>"
        "<th>errors</th><th>runs</th><th>pass rate</th><th>95% CI</th><th>pass^k rate</th></tr>"
    )
    rows = []
    for kind in kinds:
        s = summary[kind]
        counts = "".join(
            f'<td class="num">{_e(s[key])}</td>'
            for key in ("tasks", "passed", "failed", "flaky", "errors", "runs")
        )
        rows.append(
            f"<tr><td>{_e(kind)}</td>{counts}"
            f'<td class="num">{_pct(s["pass_rate"])}</td>'
            f'<td class="num">{_ci(s["ci_low"], s["ci_high"])}</td>'
            f'<td class="num">{_pct(s["pass_all_rate"])}</td></tr>'
        )
    if not rows:
        rows.append('<tr><td colspan="10">no task was run</td></tr>')
    return f"<section><h2>Summary</h2><table>{head}{''.join(rows)}</table></section>"


def _suites(
    report: Mapping[str, Any],
) -> list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]]:
    """Suites in the report's order with their tasks; a task of an unlisted suite still shows."""
    suites: dict[str, tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = {
        s["name"]: (s, []) for s in report["suites"]
    }
    for task in report["tasks"]:
        name = task["suite"]
        suites.setdefault(name, ({"name": name}, []))[1].append(task)
    return list(suites.values())


def _suite(suite: Mapping[str, Any], tasks: Sequence[Mapping[str, Any]]) -> str:
    kind = f" ({_e(suite['kind'])})" if suite.get("kind") else ""
    about = (
        f"<p>file <code>{_e(suite.get('path', ''))}</code>, "
        f"sha256 <code>{_e(suite.get('sha256', ''))}</code></p>"
    )
    head = (
        "<tr><th>task</th><th>status</th><th>pass rate</th><th>95% CI</th><th>pass^k</th>"
        "<th>epochs</th><th>detail</th></tr>"
    )
    rows = "".join(_task_row(t) for t in tasks) or '<tr><td colspan="7">no task</td></tr>'
    title = f"<h2>Suite {_e(suite['name'])}{kind}</h2>"
    return f"<section>{title}{about}<table>{head}{rows}</table></section>"


def _task_row(task: Mapping[str, Any]) -> str:
    status = str(task["status"])
    css = status if status in ("passed", "failed", "flaky", "error") else "error"
    epochs: Sequence[Mapping[str, Any]] = task["epochs"]
    outcomes = "".join(_epoch_badge(e) for e in epochs)
    return (
        f"<tr><td><code>{_e(task['id'])}</code></td>"
        f'<td><span class="status {css}">{_e(status)}</span></td>'
        f'<td class="num">{_pct(task["pass_rate"])} ({_e(task["passes"])}/{_e(task["runs"])})'
        f'</td><td class="num">{_ci(task["ci_low"], task["ci_high"])}</td>'
        f"<td>{'yes' if task['pass_all'] is True else 'no'}</td>"
        f"<td>{outcomes}</td><td>{_task_detail(task, epochs)}</td></tr>"
    )


def _epoch_badge(epoch: Mapping[str, Any]) -> str:
    css = "ok" if epoch["passed"] is True else "bad"
    outcome = "error" if epoch.get("error") else epoch.get("outcome")
    return f'<span class="ep {css}">{_e(epoch["epoch"])}: {_e(outcome)}</span>'


def _task_detail(task: Mapping[str, Any], epochs: Iterable[Mapping[str, Any]]) -> str:
    blocks: list[str] = []
    attack = task.get("attack")
    if attack:
        fields = "".join(f"<li><code>{_e(f)}</code></li>" for f in attack.get("fields") or ())
        blocks.append(
            f"<p>attack: payload <code>{_e(attack.get('payload', ''))}</code>, goal "
            f"<code>{_e(attack.get('goal', ''))}</code>, planted in:</p><ul>{fields}</ul>"
        )
    failing = 0
    for epoch in epochs:
        if epoch["passed"] is True:
            continue
        items = [
            f"<li><code>{_e(c['check'])}</code>: {_e(c.get('detail', ''))}</li>"
            for c in epoch.get("checks") or ()
            if c["passed"] is not True
        ]
        if epoch.get("error"):
            items.insert(0, f"<li>error: <pre>{_e(epoch['error'])}</pre></li>")
        failing += len(items)
        title = f"epoch {_e(epoch['epoch'])} (seed {_e(epoch.get('seed'))}, run "
        title += f"<code>{_e(epoch.get('run_id'))}</code>)"
        blocks.append(f"<p>{title}</p><ul>{''.join(items)}</ul>")
    if not blocks:
        return ""
    tags = ", ".join(str(t) for t in task.get("tags") or ())
    label = f"{failing} failing" if failing else "attack"
    tag_line = f"<p>tags: {_e(tags)}</p>" if tags else ""
    return f"<details><summary>{label}</summary>{tag_line}{''.join(blocks)}</details>"


def _pct(value: object) -> str:
    return f"{float(value) * 100:.1f}%" if isinstance(value, int | float) else "n/a"


def _ci(low: object, high: object) -> str:
    return f"{_pct(low)} \u2013 {_pct(high)}"
