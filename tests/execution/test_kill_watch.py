"""The kill watch on its own: it finds kills for calls in flight, parks and wakes without
losing a call, and a switch it cannot read interrupts nothing."""

from __future__ import annotations

import asyncio
import threading

import pytest

from charter.core.cancellation import Cancellation
from charter.core.errors import KillSignal
from charter.execution.kill_switch import ActiveKill, KillSwitches
from charter.execution.kill_watch import KillWatch

NO_HANG = 20.0


def test_a_kill_reaches_every_call_in_its_scope_and_no_other() -> None:
    watch, switches = KillWatch(interval=0.005), KillSwitches()
    acme, also_acme, globex = Cancellation(), Cancellation(), Cancellation()
    flights = [
        watch.enter(switches, "support", "acme", acme, None),
        watch.enter(switches, "billing", "acme", also_acme, None),
        watch.enter(switches, "support", "globex", globex, None),
    ]
    switches.kill("tenant:acme", "abuse")

    assert acme.wait(NO_HANG)
    assert also_acme.wait(NO_HANG)
    assert (acme.scope, acme.reason) == ("tenant:acme", "abuse")
    assert watch.poll() == 0  # each call is told once; globex is not in the scope
    assert not globex.cancelled
    for flight in flights:
        watch.leave(flight)
    assert watch.in_flight() == 0


def test_calls_that_come_and_go_are_all_watched_whether_the_watcher_sleeps_or_not() -> None:
    # Each round the watcher may be parked, parking, or looking: none may miss the call.
    watch, switches = KillWatch(interval=0.001), KillSwitches()
    for round_ in range(40):
        cancellation = Cancellation()
        flight = watch.enter(switches, "support", "acme", cancellation, None)
        switches.kill("charter:support", f"round {round_}")
        assert cancellation.wait(NO_HANG), f"round {round_}: the kill never reached the call"
        watch.leave(flight)
        assert switches.revive("charter:support")


def test_a_finished_call_is_left_alone() -> None:
    watch, switches = KillWatch(interval=60), KillSwitches()
    cancellation = Cancellation()
    watch.leave(watch.enter(switches, "support", "acme", cancellation, None))
    switches.kill("all", "outage")
    assert watch.poll() == 0
    assert not cancellation.cancelled


class FlakyView:
    """Kill switches whose database is down until ``up`` is set."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.asked = threading.Event()

    def active_for(self, charter: str, tenant: str) -> ActiveKill | None:
        self.asked.set()
        if not self.up.is_set():
            raise ConnectionError("database is down")
        return ActiveKill("all", "outage")


def test_a_switch_that_cannot_be_read_interrupts_nothing_and_the_watch_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch, view = KillWatch(interval=0.005), FlakyView()
    cancellation = Cancellation()
    flight = watch.enter(view, "support", "acme", cancellation, None)

    assert view.asked.wait(NO_HANG)
    assert watch.poll() == 0  # failed reads: the call was allowed when it started
    assert not cancellation.cancelled
    assert "cannot check the kill switches" in caplog.text

    view.up.set()  # the database is back, with a kill in force: the thread still looks
    assert cancellation.wait(NO_HANG)
    watch.leave(flight)


def test_an_async_call_is_cancelled_on_its_own_loop_and_told_why() -> None:
    watch, switches = KillWatch(interval=0.005), KillSwitches()

    async def call() -> str:
        cancellation = Cancellation()
        task = asyncio.current_task()
        assert task is not None
        flight = watch.enter(switches, "support", "acme", cancellation, task)
        try:
            switches.kill("charter:support", "refund loop")
            await asyncio.Event().wait()  # only a cancellation ends this
        except asyncio.CancelledError:
            assert flight.stopped_by_kill()  # the kill's, and no one else's
            return f"stopped by {cancellation.scope}"
        finally:
            watch.leave(flight)
        return "not stopped"  # pragma: no cover

    async def bounded() -> str:
        return await asyncio.wait_for(call(), NO_HANG)

    assert asyncio.run(bounded()) == "stopped by charter:support"


def test_the_cancellation_signal_raises_a_kill_signal_once_set() -> None:
    cancellation = Cancellation()
    cancellation.raise_if_cancelled()  # not set: nothing happens
    assert not cancellation.wait(0)
    assert cancellation.cancel("tenant:acme", "abuse")
    assert not cancellation.cancel("all", "later")  # the first kill is the one recorded
    with pytest.raises(KillSignal) as raised:
        cancellation.raise_if_cancelled()
    assert (raised.value.scope, raised.value.reason) == ("tenant:acme", "abuse")
    assert cancellation.wait(NO_HANG)
    assert "cancelled by tenant:acme" in repr(cancellation)
