"""Container endpoints: create, list, inspect, the lifecycle verbs (start, stop, restart, kill,
pause, unpause, rename, update, wait, remove, prune), top, changes, export, stats, resize and
the archive (docker cp) endpoints: each parses the request, calls the engine calls the CLI
calls, and shapes docker's JSON."""

import base64
import json
import os
import tempfile
import time

from berth.api.create import create_request
from berth.api.http import Response, Stream, json_lines, no_content
from berth.engine import lifecycle
from berth.engine.container_list import list_containers
from berth.engine.containers import is_running
from berth.engine.inspect import inspect as inspect_object
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, NotImplementedYet
from berth.units import parse_rfc3339

CHUNK = 1 << 16
CHANGE_KINDS = {"C": 0, "A": 1, "D": 2}  # docker's archive.ChangeType


def _container(req) -> dict:
    return req.engine.get(req.params["id"])


def _signal(req, name: str = "signal") -> int | None:
    value = req.arg(name)
    if not value:
        return None
    from berth.signals import parse_signal  # lazy: only a signal given

    try:
        return parse_signal(value)
    except BerthError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


# -- create, list, inspect -------------------------------------------------------------
def create(req) -> Response:
    engine = req.engine
    platform = req.arg("platform")
    create_req = create_request(req.json_object(required=True), req.arg("name"), engine)
    if platform:
        from berth.engine.run_options import check_platform  # lazy: only ?platform

        check_platform(platform, create_req.image)
    record = engine.create(create_req)  # a missing image: docker's 404, on which its CLI pulls and asks again
    return Response({"Id": record["Id"], "Warnings": list(create_req.warnings)}, status=201)


def list_json(req) -> Response:
    limit = req.int_arg("limit", -1)
    size = req.flag("size")
    summaries = list_containers(req.engine, all_containers=req.flag("all"), last=limit, filters=req.filter_args())
    return Response([summary_json(s, size) for s in summaries])


def summary_json(summary, size: bool = False) -> dict:
    """docker's ContainerSummary of one container (GET /containers/json, /system/df);
    SizeRw/SizeRootFs with `size`."""
    record = summary.record
    shaped = {
        "Id": summary.id, "Names": ["/" + summary.name], "Image": summary.image, "ImageID": summary.image_id,
        "Command": _command(record), "Created": int(parse_rfc3339(summary.created)),
        "Ports": _ports(record), "Labels": summary.labels, "State": summary.state, "Status": summary.status,
        "HostConfig": {"NetworkMode": summary.network_mode},
        "NetworkSettings": {"Networks": (record.get("NetworkSettings") or {}).get("Networks") or {}},
        "Mounts": record.get("Mounts") or [],
    }
    if size:
        shaped["SizeRw"], shaped["SizeRootFs"] = summary.sizes()
    return shaped


def _command(record: dict) -> str:
    """moby's list: the path, then each argument, quoted in '' when it holds a space."""
    args = [f"'{arg}'" if " " in arg else arg for arg in record["Args"]]
    return " ".join([record["Path"]] + args)


def _ports(record: dict) -> list[dict]:
    """docker's Port list: one entry per binding (IP, PrivatePort, PublicPort, Type), or per
    exposed port without one."""
    ports = (record.get("NetworkSettings") or {}).get("Ports") or {}
    out = []
    for key, bindings in sorted(ports.items()):
        number, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
        for binding in bindings or ():
            if binding.get("HostPort"):
                out.append({"IP": binding.get("HostIp") or "", "PrivatePort": int(number),
                            "PublicPort": int(binding["HostPort"]), "Type": proto or "tcp"})
            else:
                out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    return out


def inspect(req) -> Response:
    _kind, record = inspect_object(req.engine, req.params["id"], kind="container", size=req.flag("size"))
    return Response(record)


# -- lifecycle -----------------------------------------------------------------------------
def start(req) -> Response:
    if req.arg("checkpoint") or req.arg("checkpoint-dir"):
        raise NotImplementedYet("restoring a container from a checkpoint (CRIU) is not supported")
    record = _container(req)
    if is_running(record):
        return Response(status=304)
    from berth.engine.attach import start_detached  # lazy: only start

    req.engine.mark_stopped_by_hand(record["Id"], False)
    try:
        start_detached(req.engine, record["Id"])
    except BerthError:
        lifecycle.remove_if_auto(req.engine, record)
        raise
    return no_content()


def stop(req) -> Response:
    record = _container(req)
    timeout, signum = req.int_arg("t"), _signal(req)
    if not is_running(record):
        return Response(status=304)
    req.engine.stop(record, timeout, signum)
    return no_content()


def restart(req) -> Response:
    record = _container(req)
    lifecycle.restart(req.engine, record, req.int_arg("t"), _signal(req))
    return no_content()


def kill(req) -> Response:
    record = _container(req)
    signum = _signal(req)
    req.engine.kill(record, 9 if signum is None else signum)
    return no_content()


def pause(req) -> Response:
    req.engine.pause(_container(req), True)
    return no_content()


def unpause(req) -> Response:
    req.engine.pause(_container(req), False)
    return no_content()


def rename(req) -> Response:
    name = req.arg("name")
    if not name:
        raise InvalidArgument("Neither old nor new names may be empty")
    req.engine.rename(_container(req), name)
    return no_content()


# HostConfig fields `docker update` may change (moby's container.UpdateConfig resources)
UPDATE_FIELDS = ("Memory", "MemoryReservation", "MemorySwap", "CpuShares", "CpuPeriod", "CpuQuota", "CpusetCpus",
                 "CpusetMems", "NanoCpus", "BlkioWeight", "CpuRealtimePeriod", "CpuRealtimeRuntime")


def update(req) -> Response:
    from berth.engine.create_checks import check_restart_policy  # lazy: only update
    from berth.engine.resources import update_container  # lazy: only update

    body = req.json_object(required=True)
    changes = {field: body[field] for field in UPDATE_FIELDS if body.get(field)}
    if body.get("PidsLimit") is not None:
        changes["PidsLimit"] = max(body["PidsLimit"], 0)  # docker: any value <= 0 lifts the limit
    restart_policy = body.get("RestartPolicy") or {}
    restart = check_restart_policy(restart_policy) if restart_policy.get("Name") else None
    warnings = update_container(req.engine, req.params["id"], changes, restart)
    return Response({"Warnings": warnings})


WAIT_CONDITIONS = ("", "not-running", "next-exit", "removed")


def wait(req) -> Stream:
    """docker's wait: the headers at once (a Stream sends them before it asks for the first
    chunk: docker's CLI `run` waits before it starts the container), the exit status when
    `condition` is met."""
    condition = req.arg("condition") or "not-running"
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f"invalid condition: {condition!r}")
    record = _container(req)
    return Stream(_waited(req.engine, record, condition))


def _waited(engine, record: dict, condition: str):
    code = _wait_for(engine, record, condition)
    yield json.dumps({"StatusCode": code, "Error": None}).encode() + b"\n"


POLL = 0.02  # seconds between looks at a container not yet running


def _wait_for(engine, record: dict, condition: str) -> int:
    """The exit code once `condition` holds: not-running (now, if it is not), next-exit (its
    next end, after a start if it has not started), removed (once its record is gone)."""
    container_id = record["Id"]
    finished = record["State"]["FinishedAt"]
    code = record["State"]["ExitCode"]
    since_ns = time.time_ns()
    while True:
        try:
            state = engine.load(container_id)["State"]
            code = state["ExitCode"]
            if state["Running"] or state["Restarting"]:
                code = lifecycle.wait(engine, container_id)
                if condition != "removed":
                    return code
            elif condition == "not-running" or (condition == "next-exit" and state["FinishedAt"] != finished):
                return code
        except (FileNotFoundError, NotFound):  # removed (run --rm): the exit code its die event told
            died = lifecycle.exit_code_after(engine, container_id, since_ns)
            return code if died is None else died
        time.sleep(POLL)


def remove(req) -> Response:
    if req.flag("link"):
        lifecycle.remove_link(req.engine, req.params["id"])
        return no_content()
    lifecycle.remove(req.engine, req.params["id"], force=req.flag("force"), volumes=req.flag("v"))
    return no_content()


def prune(req) -> Response:
    from berth.engine.prune import prune_containers  # lazy: only prune
    from berth.filters import prune_filters  # lazy: only prune

    filters = req.filter_args()
    return Response(prune_containers(req.engine, prune_filters(filters) if filters else None))


# -- what runs in it, what changed -----------------------------------------------------------
def top(req) -> Response:
    from berth.engine.top import top as list_processes  # lazy: only top

    titles, processes = list_processes(_container(req), req.arg("ps_args") or "-ef")
    text = lambda fields: [f.decode("utf-8", "replace") for f in fields]  # noqa: E731
    return Response({"Titles": text(titles), "Processes": [text(p) for p in processes]})


def changes(req) -> Response:
    from berth.engine.commit import diff  # lazy: only changes

    found = diff(_container(req))
    if not found:  # docker's nil slice
        return Response(b"null\n", content_type="application/json")
    return Response([{"Path": path, "Kind": CHANGE_KINDS[kind]} for kind, path in found])


def export(req) -> Stream:
    from berth.engine.commit import export as export_tar  # lazy: only export

    record = _container(req)
    spool = tempfile.TemporaryFile()
    try:
        export_tar(record, spool.fileno())
    except BaseException:
        spool.close()
        raise
    return Stream(_spooled(spool), content_type="application/x-tar")


def _spooled(spool):
    """A spool file's content, from its start, then the file goes."""
    try:
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk
    finally:
        spool.close()


def resize(req) -> Response:
    from berth.engine.attach import attach  # lazy: only resize

    height, width = req.int_arg("h", 0), req.int_arg("w", 0)
    record = _container(req)
    if not is_running(record):
        raise Conflict(f"Container {record['Id']} is not running")
    if not record["Config"]["Tty"]:
        return Response(b"")  # docker: nothing to resize without a tty
    session = attach(req.engine, record["Id"], stdin=False, size=(height, width))
    try:
        session.resize(height, width)
        session.flush(block=True)
    finally:
        session.close()
    return Response(b"")


# -- stats --------------------------------------------------------------------------------
def stats(req) -> Stream | Response:
    record = _container(req)
    stream = req.flag("stream", True) and not req.flag("one-shot")
    if not stream:
        return Response(_stats_once(record, req.flag("one-shot")))
    return Stream(json_lines(_stats_stream(req.engine, record["Id"])))


ONCE_INTERVAL = 0.1  # seconds between the two samples of a stream=false answer (docker's CLI needs precpu)


def _stats_once(record: dict, one_shot: bool) -> dict:
    from berth.engine.stats import sample  # lazy: only stats

    if one_shot:
        return stats_json(record, (None, 0.0), (sample(record), time.time()))
    previous = (sample(record), time.time())
    if previous[0] is not None:
        time.sleep(ONCE_INTERVAL)
    return stats_json(record, previous, (sample(record), time.time()))


def _stats_stream(engine, container_id: str):
    from berth.engine.stats import INTERVAL, sample  # lazy: only stats

    previous = (None, 0.0)
    while True:
        try:
            record = engine.load(container_id)
        except FileNotFoundError:
            return
        current = (sample(record), time.time())
        yield stats_json(record, previous, current)
        previous = current
        time.sleep(INTERVAL)


ZERO_READ = "0001-01-01T00:00:00Z"


def stats_json(record: dict, previous: tuple, current: tuple) -> dict:
    """docker's StatsResponse (cgroup v2 shape) from two engine samples, each (sample or None,
    when it was taken)."""
    from berth.engine.stats import host_memory  # lazy: only stats
    from berth.units import format_rfc3339_nano  # lazy: only stats

    (previous, preread), (current, read) = previous, current
    figures = {
        "read": format_rfc3339_nano(read) if current is not None else ZERO_READ,
        "preread": format_rfc3339_nano(preread) if previous is not None else ZERO_READ,
        "pids_stats": {}, "blkio_stats": _blkio(current), "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(current), "precpu_stats": _cpu(previous), "memory_stats": {},
        "name": record["Name"], "id": record["Id"],
    }
    if current is None:
        return figures
    cgroup = current.cgroup
    figures["pids_stats"] = {"current": cgroup.pids_current}
    if getattr(cgroup, "pids_limit", 0):
        figures["pids_stats"]["limit"] = cgroup.pids_limit
    limit = min(cgroup.memory_limit or host_memory(), host_memory())
    figures["memory_stats"] = {"usage": cgroup.memory_usage, "stats": dict(cgroup.memory_stats or {}),
                               "limit": limit}
    if record["HostConfig"].get("NetworkMode") != "host":
        figures["networks"] = {"eth0": {"rx_bytes": current.net_rx, "rx_packets": 0, "rx_errors": 0,
                                        "rx_dropped": 0, "tx_bytes": current.net_tx, "tx_packets": 0,
                                        "tx_errors": 0, "tx_dropped": 0}}
    return figures


def _cpu(sample) -> dict:
    if sample is None:
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    usage = {"total_usage": sample.cgroup.cpu_usage, "usage_in_kernelmode": 0, "usage_in_usermode": 0}
    if sample.cgroup.percpu_usage:
        usage["percpu_usage"] = list(sample.cgroup.percpu_usage)
    return {"cpu_usage": usage, "system_cpu_usage": sample.system_cpu, "online_cpus": sample.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def _blkio(sample) -> dict:
    if sample is None:
        return {"io_service_bytes_recursive": None, "io_serviced_recursive": None, "io_queue_recursive": None,
                "io_service_time_recursive": None, "io_wait_time_recursive": None, "io_merged_recursive": None,
                "io_time_recursive": None, "sectors_recursive": None}
    return {"io_service_bytes_recursive": [
        {"major": 0, "minor": 0, "op": "read", "value": sample.cgroup.blkio_read},
        {"major": 0, "minor": 0, "op": "write", "value": sample.cgroup.blkio_write}],
        "io_serviced_recursive": None, "io_queue_recursive": None, "io_service_time_recursive": None,
        "io_wait_time_recursive": None, "io_merged_recursive": None, "io_time_recursive": None,
        "sectors_recursive": None}


# -- archive (docker cp) ----------------------------------------------------------------------
def _archive_path(req) -> str:
    path = req.arg("path")
    if not path:
        raise InvalidArgument("path cannot be empty")
    return path


def _stat_header(stat: dict) -> dict:
    return {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(stat).encode()).decode()}


def archive_head(req) -> Response:
    """HEAD (the server routes it to the GET route): the path's stat only."""
    from berth.engine.copy import path_stat  # lazy: only cp

    return Response(headers=_stat_header(path_stat(req.engine, req.params["id"], _archive_path(req))))


def archive_get(req) -> Stream | Response:
    if req.method == "HEAD":
        return archive_head(req)
    from berth.engine.copy import CopyRequest, copy, path_stat  # lazy: only cp

    path, ref = _archive_path(req), req.params["id"]  # docker's errors name the container as given
    stat = path_stat(req.engine, ref, path)
    spool = tempfile.TemporaryFile()
    try:
        copy(req.engine, CopyRequest(ref, path, "-", to_container=False), stdout=spool.fileno())
    except BaseException:
        spool.close()
        raise
    return Stream(_spooled(spool), content_type="application/x-tar", headers=_stat_header(stat))


def archive_put(req) -> Response:
    from berth.engine.copy import extract_archive  # lazy: only cp

    path, ref = _archive_path(req), req.params["id"]
    req.engine.get(ref)  # an unknown container before its body is read
    with tempfile.TemporaryFile() as spool:
        for chunk in req.chunks():
            spool.write(chunk)
        spool.flush()
        os.lseek(spool.fileno(), 0, os.SEEK_SET)
        extract_archive(req.engine, ref, path, spool.fileno(), keep_owner=req.flag("copyUIDGID"))
    return Response(b"")


ROUTES = [
    ("POST", "/containers/create", create),
    ("GET", "/containers/json", list_json),
    ("POST", "/containers/prune", prune),
    ("GET", "/containers/{id}/json", inspect),
    ("POST", "/containers/{id}/start", start),
    ("POST", "/containers/{id}/stop", stop),
    ("POST", "/containers/{id}/restart", restart),
    ("POST", "/containers/{id}/kill", kill),
    ("POST", "/containers/{id}/pause", pause),
    ("POST", "/containers/{id}/unpause", unpause),
    ("POST", "/containers/{id}/rename", rename),
    ("POST", "/containers/{id}/update", update),
    ("POST", "/containers/{id}/wait", wait),
    ("POST", "/containers/{id}/resize", resize),
    ("GET", "/containers/{id}/top", top),
    ("GET", "/containers/{id}/changes", changes),
    ("GET", "/containers/{id}/export", export),
    ("GET", "/containers/{id}/stats", stats),
    ("GET", "/containers/{id}/archive", archive_get),
    ("PUT", "/containers/{id}/archive", archive_put),
    ("DELETE", "/containers/{id}", remove),
    ("DELETE", "/containers/{id:path}", remove),  # ?link=1 of /PARENT/ALIAS
]
