"""Use cases that wait on, cycle or remove a container: `wait`, `restart`, `rm`."""

from berth.engine.names import valid_name
from berth.engine.procs import wait_gone
from berth.errors import NotFound


def remove(engine, ref: str, force: bool = False, volumes: bool = False) -> None:
    """`rm`: the container `ref` names. A name left by a create or rm killed midway (its
    holder is no container) is freed on the way, so the name can be used again at once."""
    try:
        record = engine.get(ref)
    except NotFound:
        name = ref.lstrip("/")
        if valid_name(name):
            engine.store.reclaim_stale_name(name)
        engine.store.reap_trash()  # a creation or removal killed midway, found by nobody else
        raise
    engine.remove(record, force=force, volumes=volumes)


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
