"""Use cases that wait on or cycle a container: `wait` and `restart`."""

from berth.engine.procs import wait_gone
from berth.errors import NotFound


def restart(engine, record: dict, timeout: float | None = None, signum: int | None = None) -> None:
    """`restart`: stop (as `stop` does), then start detached under a new supervisor."""
    from berth.monitor.supervisor import start_detached  # lazy: only restart forks a supervisor

    engine.stop(record, timeout, signum)
    engine.mark_stopped_by_hand(record["Id"], False)
    start_detached(engine, record["Id"])


def wait(engine, container_id: str) -> int:
    """Block until the container is not running (nor restarting); its exit code."""
    while True:
        record = engine.load(container_id)
        state = record["State"]
        if state["Running"] and state["Pid"]:
            wait_gone(state["Pid"], 3600)
        if not (state["Running"] or state["Restarting"]):
            return state["ExitCode"]
        record = engine.wait_recorded(container_id, timeout=3600)
        if not record:
            raise NotFound(f"No such container: {container_id}")
        if not (record["State"]["Running"] or record["State"]["Restarting"]):
            return record["State"]["ExitCode"]
