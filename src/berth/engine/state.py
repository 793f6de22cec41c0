"""A container's lifecycle as one table, like runc's libcontainer/state_linux.go: the statuses
docker shows, the transitions allowed between them, and docker's State booleans derived from
the status when a record is written. Every verb asks the table; an illegal transition is a
Conflict in docker's words, never a traceback."""

from berth.errors import Conflict
from berth.fs import pid_alive

CREATED = "created"
RUNNING = "running"
PAUSED = "paused"
RESTARTING = "restarting"  # in the restart policy's back-off (docker: Running and Restarting)
REMOVING = "removing"
EXITED = "exited"
DEAD = "dead"  # its removal failed half-way: only rm can act on it

TRANSITIONS = {
    CREATED: {RUNNING, EXITED, REMOVING},  # EXITED: a start that failed after running once
    RUNNING: {PAUSED, EXITED, RESTARTING, REMOVING},
    PAUSED: {RUNNING, EXITED, REMOVING},  # EXITED: killed while frozen
    RESTARTING: {RUNNING, EXITED, REMOVING},
    EXITED: {RUNNING, RESTARTING, REMOVING},
    REMOVING: {DEAD},
    DEAD: {REMOVING},
}

# docker's State booleans for each status: Running stays true while paused or restarting.
_BOOLEANS = {
    CREATED: (False, False, False, False),
    RUNNING: (True, False, False, False),
    PAUSED: (True, True, False, False),
    RESTARTING: (True, False, True, False),
    REMOVING: (False, False, False, False),
    EXITED: (False, False, False, False),
    DEAD: (False, False, False, True),
}


def allowed(current: str, wanted: str) -> bool:
    return wanted in TRANSITIONS.get(current, ())


def booleans(status: str) -> dict:
    running, paused, restarting, dead = _BOOLEANS[status]
    return {"Running": running, "Paused": paused, "Restarting": restarting, "Dead": dead}


def status_of(state: dict) -> str:
    """The status a docker-shaped State stands for (records written before the table kept
    only the booleans right)."""
    status = state.get("Status")
    if status in _BOOLEANS:
        return status
    if state.get("Dead"):
        return DEAD
    if state.get("Restarting"):
        return RESTARTING
    if state.get("Paused"):
        return PAUSED
    if state.get("Running"):
        return RUNNING
    return CREATED if (state.get("StartedAt") or "0001").startswith("0001") else EXITED


# docker's words for the refusals verbs meet most (moby's daemon/*.go)
_REFUSALS = {
    ("start", RUNNING): "container {short} is already running",
    ("start", PAUSED): "cannot start a paused container, try unpause instead",
    ("start", REMOVING): "container is marked for removal and cannot be started",
    ("start", DEAD): "container is marked for removal and cannot be started",
    ("pause", PAUSED): "Container {id} is already paused",
    ("unpause", RUNNING): "Container {id} is not paused",
    ("rm", REMOVING): "removal of container {short} is already in progress",
}


class Container:
    """A container's record (the shape `docker inspect` prints) with its lifecycle: `status`
    is read from it, `transition()` checks the table and sets Status and the booleans."""

    __slots__ = ("record",)

    def __init__(self, record: dict):
        self.record = record

    @property
    def id(self) -> str:
        return self.record["Id"]

    @property
    def name(self) -> str:
        return self.record["Name"].lstrip("/")

    @property
    def status(self) -> str:
        return status_of(self.record["State"])

    def check(self, verb: str, wanted: str) -> None:
        """Conflict, in docker's words for `verb`, if the table forbids moving to `wanted`."""
        current = self.status
        if current != wanted and not allowed(current, wanted):
            raise Conflict(refusal(verb, current, self.id))

    def transition(self, wanted: str, verb: str | None = None, **fields) -> None:
        """Move to `wanted` (and set other State `fields`); Conflict if the table forbids it."""
        current = self.status
        if current != wanted and not allowed(current, wanted):
            raise Conflict(refusal(verb or wanted, current, self.id))
        self.record["State"].update(Status=wanted, **booleans(wanted), **fields)


def is_running(record: dict) -> bool:
    """True if the record says running and its process is really alive."""
    state = record["State"]
    return bool(state["Running"]) and pid_alive(state["Pid"])


def container_cgroup(record: dict):
    """The container's cgroup, under its --cgroup-parent: the one place a record names it."""
    from berth.runtime.cgroups import cgroup_path, open_cgroup  # lazy: only starts, stops and looks at cgroups

    return open_cgroup(cgroup_path(record["Id"], record["HostConfig"].get("CgroupParent")))


def refusal(verb: str, status: str, container_id: str) -> str:
    template = _REFUSALS.get((verb, status))
    if template is None:
        return f"cannot {verb} container {container_id[:12]}: it is {status}"
    return template.format(id=container_id, short=container_id[:12])
