"""Use cases that wait on, cycle or remove a container: `wait`, `restart`, `rm`, and the
boot-time start of containers whose restart policy says they should run."""

import time

from berth.engine.names import valid_name
from berth.engine.procs import wait_gone
from berth.engine.state import DEAD, REMOVING, Container
from berth.errors import BerthError, Conflict, NotFound


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


def remove_link(engine, ref: str) -> None:
    """`rm --link /PARENT/ALIAS` (docker's legacy links): the link goes from the linking
    container's HostConfig.Links; a container name alone is docker's conflict."""
    parent, _, alias = ref.strip("/").rpartition("/")
    if not parent:
        raise Conflict("Conflict, cannot remove the default link name of the container")
    missing = NotFound(f"No such container: {ref.strip('/')}")
    try:
        record = engine.get(parent)
    except NotFound:
        raise missing from None
    with engine.locked(record["Id"]) as record:
        links = record["HostConfig"].get("Links") or []
        kept = [entry for entry in links if entry.partition(":")[2].rpartition("/")[2] != alias]
        if len(kept) == len(links):
            raise missing
        record["HostConfig"]["Links"] = kept or None
        engine.store.write(record)


def remove_if_auto(engine, record: dict) -> None:
    """After a failed start: an AutoRemove (--rm) container goes with its anonymous volumes,
    as docker's daemon removes it (its CLI waits for that removal)."""
    if record["HostConfig"].get("AutoRemove"):
        try:
            engine.remove(record, force=True, volumes=True)
        except BerthError:
            pass


def restart(engine, record: dict, timeout: float | None = None, signum: int | None = None) -> None:
    """`restart`: stop (as `stop` does), then start detached under a new supervisor."""
    from berth.monitor.supervisor import start_detached  # lazy: only restart forks a supervisor

    engine.stop(record, timeout, signum)
    engine.mark_stopped_by_hand(record["Id"], False)
    start_detached(engine, record["Id"])


def wait(engine, container_id: str) -> int:
    """Block until the container is not running (nor restarting); its exit code, also when
    it was removed meanwhile (--rm): its die event's."""
    since_ns = time.time_ns()

    def ended(record: dict) -> int | None:
        state = record["State"]
        if state["Running"] or state["Restarting"]:
            return None
        if Container(record).status == REMOVING:  # --rm takes it away without recording its end
            died = exit_code_after(engine, container_id, since_ns)
            return state["ExitCode"] if died is None else died
        return state["ExitCode"]

    try:
        while True:
            record = engine.load(container_id)
            if record["State"]["Running"] and record["State"]["Pid"]:
                wait_gone(record["State"]["Pid"], 3600)
            code = ended(record)
            if code is None:
                record = engine.wait_recorded(container_id, timeout=3600)
                if not record:
                    raise FileNotFoundError(container_id)
                code = ended(record)
            if code is not None:
                return code
    except FileNotFoundError:
        code = exit_code_after(engine, container_id, since_ns)
        if code is None:
            raise NotFound(f"No such container: {container_id}") from None
        return code


def exit_code_after(engine, container_id: str, since_ns: int) -> int | None:
    """The exit code of the container's last end since `since_ns`, from its die event: what a
    waiter still learns once an --rm container's record is gone."""
    from berth.engine import events  # lazy: only a wait that lost its container

    code = None
    for msg in events.watch(engine, since_ns, time.time_ns(), {"container": [container_id], "event": ["die"]}):
        code = int((msg.get("Actor") or {}).get("Attributes", {}).get("exitCode", 0))
    return code


def start_by_policy(engine) -> list[dict]:
    """What dockerd does for its containers when it starts (moby's restore, then its restart
    manager's ShouldRestart), for a daemonless engine to run at boot: start every container
    that is not running and whose restart policy says it should be — `always` (even one
    stopped by hand, as a docker daemon restart does), `unless-stopped` unless stopped by
    hand, `on-failure` if its last run failed (a run the reboot cut short counts, exit 255)
    within its retry count and it was not stopped by hand. The records started."""
    from berth.monitor.supervisor import start_detached  # lazy: only this sweep forks supervisors

    engine.containers()  # finds the runs the reboot ended (records still saying running)
    engine.recover_abandoned()  # records them exited (255), or adopts one that survived
    started = []
    for container_id in engine.store.ids():
        try:
            record = engine.load(container_id)
        except FileNotFoundError:
            continue
        state = record["State"]
        if state["Running"] or state["Restarting"] or Container(record).status in (REMOVING, DEAD):
            continue
        if _should_restart(record, engine.stopped_by_hand(container_id)):
            try:
                start_detached(engine, container_id)
            except (Conflict, NotFound):
                continue  # started or removed meanwhile
            started.append(record)
    return started


def _should_restart(record: dict, by_hand: bool) -> bool:
    policy = record["HostConfig"].get("RestartPolicy") or {}
    name = policy.get("Name") or "no"
    if name == "always":
        return True
    if name == "unless-stopped":
        return not by_hand
    if name == "on-failure":
        retries = policy.get("MaximumRetryCount") or 0
        return not by_hand and record["State"]["ExitCode"] != 0 and (not retries or record["RestartCount"] < retries)
    return False
