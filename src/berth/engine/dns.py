"""Name resolution on user networks (docker's embedded DNS at 127.0.0.11): the engine's side
of the root's one resolver process (network.resolver): start it on demand, hand it each
running container to serve, tell it when names or addresses change. Loaded only for
containers on user networks."""

import fcntl
import os

from berth.engine.procs import identity, kill_and_wait, same_process
from berth.errors import BerthError
from berth.fs import PRIVATE_DIR, RECORD, make_dirs, read_json, write_json
from berth.network.resolver_control import COMM, Files, ResolverError, comm, exchange, spawn

_GONE = (FileNotFoundError, ConnectionRefusedError, ConnectionResetError, BrokenPipeError)


def serve_container(engine, record: dict) -> None:
    """Serve 127.0.0.11:53 (UDP and TCP) inside the running container's network namespace,
    from the root's resolver (started if none runs); the resolver's table now holds it."""
    _request(engine, record, start=True)


def _send_serve(engine, files: Files, record: dict, ident: list | None = None) -> dict | None:
    """The serve request of a running container, its pidfd and network namespace passed along;
    None if it has ended already (nobody to serve). With `ident` ([pid, start time] of this
    boot's run), a pid that is somebody else's by now is never taken for the container's."""
    pid = ident[0] if ident else record["State"]["Pid"]
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, ValueError, TypeError):
        return None
    try:
        if ident and not same_process(ident):  # checked after the open: the pidfd pins it
            return None
        try:
            netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            return None
        try:
            message = {"Op": "serve", "Id": record["Id"], "Upstreams": upstreams(engine, record),
                       "NdotsSet": ndots_set(engine, record)}
            return exchange(files.socket, message, (pidfd, netns))
        finally:
            os.close(netns)
    finally:
        os.close(pidfd)


def _adopt(engine, files: Files, but: str) -> None:
    """A resolver that was just started serves every other running container on a user network
    too (its predecessor was killed, or ended as one of them started): none is left without."""
    # The records as stored (no repair: the caller may hold a container's lock, in a start),
    # each run's process checked by its identity of this boot.
    for container_id in engine.store.ids():
        if container_id == but:
            continue
        try:
            record = engine.store.read(container_id)
        except (FileNotFoundError, ValueError):
            continue
        networks = record["NetworkSettings"].get("Networks") or {}
        ident = engine.store.processes(container_id).get("pid")
        if not record["State"].get("Running") or not ident or \
                all(name in ("bridge", "host", "none") for name in networks):
            continue
        try:
            _send_serve(engine, files, record, ident)
        except (ResolverError, OSError):
            continue  # it ended meanwhile: its namespace is gone


def forget_container(engine, container_id: str) -> None:
    """Stop serving the container (it stopped, or left its last user network)."""
    _request(engine, {"Op": "forget", "Id": container_id})


def refresh(engine) -> None:
    """Names, aliases or addresses changed (connect, disconnect, rename...): the resolver
    answers from the records as they are now before this returns."""
    _request(engine, {"Op": "refresh"})


def status(engine) -> dict | None:
    """What the root's resolver serves ({"Pid", "Served", "Pending", counters}), None if none runs."""
    return _request(engine, {"Op": "status"})


def upstreams(engine, record: dict) -> list:
    """[(address, asked from the host's namespace)]: where the resolver sends the names that
    are not the networks' (dnsfiles.external_servers, as the container's resolv.conf says in
    its ExtServers comment). None for a container whose every network is --internal: docker's
    resolver forwards nothing for it (SERVFAIL)."""
    from berth.engine import dnsfiles  # lazy: only a container on a user network
    from berth.engine.usernets import find  # lazy: only a container on a user network

    networks = record["NetworkSettings"].get("Networks") or {}
    if "bridge" not in networks and all((find(engine.paths.root, name) or {}).get("Internal")
                                        for name in networks if name not in ("host", "none")):
        return []
    try:
        with open("/etc/resolv.conf") as f:
            host_text = f.read()
    except OSError:
        host_text = ""
    return dnsfiles.external_servers(host_text, record["HostConfig"].get("Dns") or engine.settings.dns)


def ndots_set(engine, record: dict) -> bool:
    """Whether the container's resolv.conf sets ndots above 0 (a --dns-opt, or daemon.json's
    dns-opts): docker's resolver then keeps single-label names it does not know to itself,
    so the client goes on to its search domains."""
    for option in record["HostConfig"].get("DnsOptions") or engine.settings.dns_opts or ():
        name, _, value = option.partition(":")
        if name == "ndots" and value.isdigit() and int(value) > 0:
            return True
    return False


def _request(engine, message: dict, start: bool = False) -> dict | None:
    """One request to the root's resolver and its reply. With `start` (`message` is then the
    record of a container to serve), one is started if none runs, under the root's resolver
    lock (two starters never make two, and the resolver cannot end while it is held); without,
    None when none runs (it serves nobody then)."""
    files = Files(engine.paths.run_root)
    try:
        if not start:
            try:
                return exchange(files.socket, message)
            except _GONE:
                return None
        make_dirs(files.directory, PRIVATE_DIR)
        lock = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, RECORD)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ident = _running(files)
            if ident is not None:
                try:
                    return _send_serve(engine, files, message)
                except _GONE:  # it runs and does not answer while we hold the lock: broken
                    kill_and_wait(ident)
            pid = spawn(files, [engine.paths.root, engine.paths.run_root])
            write_json(files.pid_file, identity(pid), durable=False)
            reply = _send_serve(engine, files, message)
            _adopt(engine, files, message["Id"])
            return reply
        finally:
            os.close(lock)
    except (ResolverError, OSError) as err:
        raise BerthError(f"embedded DNS resolver: {err}") from None


def _running(files: Files) -> list | None:
    """The identity [pid, start time] of the root's resolver if it runs."""
    try:
        ident = read_json(files.pid_file)
    except (FileNotFoundError, ValueError):
        return None
    if isinstance(ident, list) and len(ident) == 2 and same_process(ident) and comm(ident[0]) == COMM:
        return ident
    return None
