"""The container lifecycle table (berth.engine.state): every transition it allows, every one it
refuses, and docker's State booleans for each status."""

import itertools

import pytest

from berth.engine import state
from berth.engine.state import Container
from berth.errors import Conflict

STATUSES = [state.CREATED, state.RUNNING, state.PAUSED, state.RESTARTING, state.REMOVING, state.EXITED,
            state.DEAD]
ALLOWED = {
    (state.CREATED, state.RUNNING), (state.CREATED, state.EXITED), (state.CREATED, state.REMOVING),
    (state.RUNNING, state.PAUSED), (state.RUNNING, state.EXITED), (state.RUNNING, state.RESTARTING),
    (state.RUNNING, state.REMOVING),
    (state.PAUSED, state.RUNNING), (state.PAUSED, state.EXITED), (state.PAUSED, state.REMOVING),
    (state.RESTARTING, state.RUNNING), (state.RESTARTING, state.EXITED), (state.RESTARTING, state.REMOVING),
    (state.EXITED, state.RUNNING), (state.EXITED, state.RESTARTING), (state.EXITED, state.REMOVING),
    (state.REMOVING, state.DEAD), (state.DEAD, state.REMOVING),
}


def container(status: str) -> Container:
    record = {"Id": "c" * 64, "Name": "/web", "State": {"Status": status, **state.booleans(status),
                                                         "StartedAt": "2026-12-07T00:00:00Z"}}
    return Container(record)


@pytest.mark.parametrize("current,wanted", sorted(ALLOWED))
def test_every_allowed_transition(current, wanted):
    c = container(current)
    c.transition(wanted, ExitCode=3)
    assert c.status == wanted
    assert c.record["State"]["Status"] == wanted and c.record["State"]["ExitCode"] == 3
    assert {k: c.record["State"][k] for k in ("Running", "Paused", "Restarting", "Dead")} == state.booleans(wanted)


@pytest.mark.parametrize("current,wanted", sorted(
    (a, b) for a, b in itertools.product(STATUSES, STATUSES) if a != b and (a, b) not in ALLOWED))
def test_every_other_transition_is_refused_and_changes_nothing(current, wanted):
    c = container(current)
    before = dict(c.record["State"])
    with pytest.raises(Conflict):
        c.transition(wanted)
    assert c.record["State"] == before


def test_staying_in_a_status_is_no_transition():
    for status in STATUSES:
        c = container(status)
        c.transition(status)
        assert c.status == status


def test_refusals_in_dockers_words():
    cid = "c" * 64
    assert state.refusal("start", state.PAUSED, cid) == "cannot start a paused container, try unpause instead"
    assert state.refusal("pause", state.PAUSED, cid) == f"Container {cid} is already paused"
    assert state.refusal("start", state.RUNNING, cid) == f"container {cid[:12]} is already running"
    with pytest.raises(Conflict, match="marked for removal and cannot be started"):
        container(state.REMOVING).transition(state.RUNNING, "start")


def test_booleans_are_dockers():
    assert state.booleans(state.PAUSED) == {"Running": True, "Paused": True, "Restarting": False, "Dead": False}
    assert state.booleans(state.RESTARTING)["Running"] and state.booleans(state.RESTARTING)["Restarting"]
    assert state.booleans(state.DEAD) == {"Running": False, "Paused": False, "Restarting": False, "Dead": True}


@pytest.mark.parametrize("fields,status", [
    ({"Running": True}, state.RUNNING), ({"Running": True, "Paused": True}, state.PAUSED),
    ({"Running": True, "Restarting": True}, state.RESTARTING), ({"Dead": True}, state.DEAD),
    ({"StartedAt": "0001-01-01T00:00:00Z"}, state.CREATED), ({"StartedAt": "2026-01-01T00:00:00Z"}, state.EXITED),
])
def test_status_of_records_without_a_status(fields, status):
    assert state.status_of(fields) == status


@pytest.mark.parametrize("current", STATUSES)
def test_check_asks_the_table_and_changes_nothing(current):
    c = container(current)
    before = dict(c.record["State"])
    if current == state.RUNNING or (current, state.RUNNING) in ALLOWED:
        c.check("start", state.RUNNING)
    else:
        with pytest.raises(Conflict, match="paused|removal|cannot start"):
            c.check("start", state.RUNNING)
    assert c.record["State"] == before


def test_is_running_needs_a_live_process():
    import os

    record = {"State": {"Running": True, "Pid": os.getpid()}}
    assert state.is_running(record)
    record["State"]["Pid"] = 0
    assert not state.is_running(record)
    record["State"].update(Running=False, Pid=os.getpid())
    assert not state.is_running(record)
