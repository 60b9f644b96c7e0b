"""Traces reach a real OTLP receiver (Arize Phoenix), and a dead one costs a run nothing.

Phoenix is heavy (about 150 packages, ~850 MB), so it is not a test dependency: the slow test
builds a separate venv once under ``~/.cache/charter-test-phoenix/venv`` (override with
``CHARTER_PHOENIX_VENV``) and reuses it. Without PyPI the test skips, or fails when
``CHARTER_REQUIRE_PHOENIX=1`` (as CI sets). Phoenix runs on loopback, with telemetry and every
outside access switched off (``shared/notes/otlp-receiver.md``).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import pytest
from charter_examples.support_desk.demo import run_demo
from charter_examples.support_desk.scenarios import DEMO_TICKETS

from charter import Runtime, Settings
from charter.execution.agent import RunResult
from charter.identity.secrets import EnvSecretProvider
from charter.observability.span_store import SpanStore
from charter.observability.tracing import run_span_id
from tests.observability.test_tracing_export import SECRET, leaky_run

PHOENIX_REQUIREMENT = "arize-phoenix==20.26.1"
_VENV = Path(
    os.environ.get("CHARTER_PHOENIX_VENV", Path.home() / ".cache" / "charter-test-phoenix" / "venv")
)


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail when CI requires the receiver."""
    if os.environ.get("CHARTER_REQUIRE_PHOENIX") == "1":
        pytest.fail(f"CHARTER_REQUIRE_PHOENIX=1 but {reason}")
    pytest.skip(reason)


def _say(message: str) -> None:
    # Progress for a first run that spends minutes installing (shown live: see the test).
    print(f"[phoenix] {message}", file=sys.stderr, flush=True)


def phoenix_venv() -> Path:
    """The venv with Phoenix installed, built once (under a lock) and then reused."""
    marker = _VENV / "charter-installed.txt"
    _VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(_VENV.parent / "venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test processes must not build it at once
        if marker.exists() and marker.read_text().strip() == PHOENIX_REQUIREMENT:
            return _VENV
        started = time.monotonic()
        _say(f"creating {_VENV} with {PHOENIX_REQUIREMENT} (first run only; takes minutes)")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(_VENV)], check=True)
        pip = [str(_VENV / "bin" / "python"), "-m", "pip"]
        install = subprocess.run(
            [*pip, "install", "--disable-pip-version-check", "--progress-bar", "off",
             PHOENIX_REQUIREMENT],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
        )  # fmt: skip
        if install.returncode != 0:
            tail = "\n".join(install.stdout.splitlines()[-15:])
            _unavailable(f"could not install {PHOENIX_REQUIREMENT} from PyPI:\n{tail}")
        marker.write_text(PHOENIX_REQUIREMENT + "\n")
        _say(f"installed in {time.monotonic() - started:.0f}s")
        return _VENV


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return json.loads(response.read() or b"null")


@contextmanager
def phoenix_server(venv: Path, workdir: Path) -> Iterator[str]:
    """A Phoenix on loopback (free ports, no telemetry, no outside access); its base URL."""
    port, grpc_port = _free_port("127.0.0.1"), _free_port("0.0.0.0")  # gRPC binds all
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
        "DO_NOT_TRACK": "1",
        "PHOENIX_DISABLE_AGENT_ASSISTANT": "true",
        "PHOENIX_AGENTS_DISABLE_WEB_ACCESS": "true",
        "PHOENIX_ALLOWED_SANDBOX_PROVIDERS": "NONE",
    }
    base = f"http://127.0.0.1:{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "phoenix.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "phoenix"), "serve"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _say(f"starting on {base} (pid {process.pid})")
        started = time.monotonic()
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-3000:]
                pytest.fail(f"phoenix exited with {process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() - started > 180:
                pytest.fail(f"phoenix did not answer /healthz within 180 s; see {log_path}")
            time.sleep(0.5)
        _say(f"healthy after {time.monotonic() - started:.1f}s")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


HEADER_TOKEN = "tok_otlp_header_5Vb8Nq2Xs"  # sent as a header: must reach no span, no error


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: str) -> Settings:
    """Settings as an operator gives them: CHARTER_* variables."""
    monkeypatch.setenv("CHARTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHARTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("CHARTER_OTLP_HEADERS", f"x-test-token={HEADER_TOKEN}")
    monkeypatch.setenv("CHARTER_TRACE_CONTENT", "1")
    monkeypatch.delenv("CHARTER_DATABASE_URL", raising=False)
    return Settings.from_env()


def _runs(runtime: Runtime, tmp_path: Path) -> list[RunResult]:
    """The support-desk demo, and a run whose tools quote their credential everywhere."""
    results = [row.result for row in asyncio.run(run_demo(runtime))]
    assert [r.outcome for r in results] == [t.expected_outcome for t in DEMO_TICKETS]
    results.append(leaky_run(runtime, tmp_path))
    return results


def test_a_dead_endpoint_costs_a_run_nothing_and_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, monkeypatch, "http://127.0.0.1:1/v1/traces")  # refused
    with Runtime(
        settings,
        secret_providers=[EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET})],
        otlp_timeout_seconds=0.5,
    ) as runtime:
        results = _runs(runtime, tmp_path)
        runtime.flush_traces()
        stats = runtime.trace_export_stats()
        stored = [s for r in results for s in SpanStore(runtime.database).spans_of_run(r.run_id)]
    spans = sum(1 + r.model_calls + len(r.tool_calls) for r in results)
    assert len(stored) == spans  # the local store has every span
    assert stats["span_store"] == {"exported": spans, "failed": 0, "last_error": ""}
    assert stats["otlp"]["exported"] == 0
    assert stats["otlp"]["failed"] == spans
    assert stats["otlp"]["last_error"].startswith("http://127.0.0.1:1/v1/traces: ")
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (HEADER_TOKEN, SECRET):
        assert secret not in json.dumps(stats)
        assert secret not in logged


@pytest.mark.slow
def test_spans_reach_phoenix_as_one_tree_per_run_joined_to_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():  # a first run installs for minutes: say so as it happens
        venv = phoenix_venv()
    with phoenix_server(venv, tmp_path / "phoenix") as base:
        settings = _settings(tmp_path, monkeypatch, f"{base}/v1/traces")
        with Runtime(
            settings,
            secret_providers=[EnvSecretProvider({"CHARTER_SECRET_PAYMENTS_REFUND": SECRET})],
        ) as runtime:
            results = _runs(runtime, tmp_path)
            assert runtime.flush_traces()
            stats = runtime.trace_export_stats()
            audit = {r.entry.run_id: r.entry.trace_id for r in runtime.audit.records()}
        expected = sum(1 + r.model_calls + len(r.tool_calls) for r in results)
        assert stats["otlp"] == {"exported": expected, "failed": 0, "last_error": ""}
        spans = _read_back(base, expected)

    text = json.dumps(spans)
    for secret in (SECRET, HEADER_TOKEN):
        assert secret not in text
    for result in results:
        mine = [s for s in spans if s["attributes"].get("charter.run_id") == result.run_id]
        [root] = [s for s in mine if s["name"].startswith("invoke_agent ")]
        assert root["parent_id"] is None
        assert root["context"]["trace_id"] == audit[result.run_id] == result.trace_id
        assert root["context"]["span_id"] == run_span_id(result.run_id)
        assert root["attributes"]["gen_ai.operation.name"] == "invoke_agent"
        assert root["attributes"]["charter.outcome"] == result.outcome
        assert len(root["attributes"]["charter.release"]) == 64
        chats = [s for s in mine if s["name"].startswith("chat ")]
        tools = [s for s in mine if s["name"].startswith("execute_tool ")]
        assert len(chats) == result.model_calls
        assert len(tools) == len(result.tool_calls)
        assert len(mine) == 1 + len(chats) + len(tools)
        for child in chats + tools:
            assert child["parent_id"] == root["context"]["span_id"]
            assert child["context"]["trace_id"] == root["context"]["trace_id"]
        for chat in chats:
            assert chat["attributes"]["gen_ai.provider.name"]
            assert chat["attributes"]["gen_ai.usage.input_tokens"] > 0
        for span in tools:
            attributes = span["attributes"]
            assert attributes["gen_ai.tool.name"] == span["name"].removeprefix("execute_tool ")
            assert attributes["gen_ai.tool.call.id"]
            assert attributes["charter.policy.verdict"] in ("allow", "deny", "require_approval")
            assert attributes["charter.enforced"]


def _read_back(base: str, expected: int) -> list[dict[str, Any]]:
    """Every span of the ``charter`` project; writes land asynchronously, so poll briefly."""
    deadline = time.monotonic() + 30
    while True:
        spans: list[dict[str, Any]] = []
        cursor = ""
        while True:
            query = urllib.parse.urlencode({"limit": 100, **({"cursor": cursor} if cursor else {})})
            try:
                page = _get(f"{base}/v1/projects/charter/spans?{query}")
            except urllib.error.HTTPError as exc:
                if exc.code != 404:  # 404: the project appears with its first span
                    raise
                page = {"data": []}
            spans.extend(page["data"])
            cursor = page.get("next_cursor") or ""
            if not cursor:
                break
        if len(spans) >= expected or time.monotonic() > deadline:
            assert len(spans) == expected, f"phoenix has {len(spans)} of {expected} spans"
            return spans
        time.sleep(0.5)


if __name__ == "__main__":  # build the venv ahead of a test run: python -m tests.integration...
    phoenix_venv()
