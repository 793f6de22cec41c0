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
    pid = record["State"]["Pid"]
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # it has ended already: nobody to serve
    try:
        try:
            netns = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError):
            return
        try:
            message = {"Op": "serve", "Id": record["Id"], "Upstreams": upstreams(engine, record)}
            _request(engine, message, (pidfd, netns), start=True)
        finally:
            os.close(netns)
    finally:
        os.close(pidfd)


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
    """[(address, from the host's namespace)]: where names that are not ours go, as docker's
    resolver sends them: the container's --dns servers, else daemon.json's `dns`, else the
    host's resolv.conf nameservers (one on the host's loopback is asked from the host's
    namespace, the others from the container's), else docker's public fallback."""
    servers = list(record["HostConfig"].get("Dns") or []) or list(engine.settings.dns)
    if servers:
        return [(server, False) for server in servers]
    from berth.engine.dnsfiles import DEFAULT_NAMESERVERS  # lazy: only when nothing names a server

    try:
        with open("/etc/resolv.conf") as f:
            text = f.read()
    except OSError:
        text = ""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 1 and fields[0] == "nameserver":
            server = fields[1].partition("%")[0]
            found.append((server, server.startswith("127.") or server == "::1"))
    return found or [(server, False) for server in DEFAULT_NAMESERVERS]


def _request(engine, message: dict, fds: tuple = (), start: bool = False) -> dict | None:
    """One request to the root's resolver and its reply. With `start`, one is started if none
    runs, under the root's resolver lock (two starters never make two, and the resolver
    cannot end while it is held); without, None when none runs (it serves nobody then)."""
    files = Files(engine.paths.run_root)
    try:
        if not start:
            try:
                return exchange(files.socket, message, fds)
            except _GONE:
                return None
        make_dirs(files.directory, PRIVATE_DIR)
        lock = os.open(files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, RECORD)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ident = _running(files)
            if ident is not None:
                try:
                    return exchange(files.socket, message, fds)
                except _GONE:  # it runs and does not answer while we hold the lock: broken
                    kill_and_wait(ident)
            pid = spawn(files, [engine.paths.root, engine.paths.run_root])
            write_json(files.pid_file, identity(pid), durable=False)
            return exchange(files.socket, message, fds)
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
