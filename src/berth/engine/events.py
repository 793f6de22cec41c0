"""The events journal of an engine root: what happened to containers, images, volumes and
networks, as docker's event messages (`GET /events`: Type, Action, Actor{ID, Attributes},
scope, time, timeNano, and the older status/id/from), one JSON line each in
<root>/events/journal. Read back from a point in time and followed live with inotify.

Emitting is one O_APPEND write per event (lines stay under PIPE_BUF, so concurrent writers
never interleave) and never fails a command: an event that cannot be written (a full disk)
is dropped. Past LIMIT bytes the journal is renamed to journal.1 (the one previous file
kept), under a lock taken only to rotate. Nothing here is imported beyond errno, os, time,
fastjson, errors and fs (every command has those) until something reads the journal:
emitting is on `run`'s hot path."""

import errno
import os
import time

from berth import fastjson
from berth.errors import UsageError
from berth.fs import Lock, make_dirs

LIMIT = 1 << 20  # bytes of the current file before it rotates; one previous file is kept
MAX_LINE = 4000  # below PIPE_BUF (4096): one write of a line is never split or interleaved
JOURNAL = "journal"
PREVIOUS = "journal.1"
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

# docker's event filters (daemon/events/filter.go); keys it does not know are ignored, as there
FILTERS = ("config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope",
           "secret", "service", "type", "volume")


def directory(root: str) -> str:
    return os.path.join(root, "events")


def _quiet(report):
    """An event helper that never fails the command it reports on (a record missing a field)."""
    def guarded(*args, **kwargs) -> None:
        try:
            report(*args, **kwargs)
        except Exception:  # noqa: BLE001 - see emit
            pass
    guarded.__doc__ = report.__doc__
    return guarded


# -- emitting ------------------------------------------------------------------------

def emit(root: str, kind: str, action: str, actor_id: str, attributes: dict, labels: dict | None = None,
         extra: dict | None = None) -> None:
    """Append one event. Attributes as docker merges them: `extra` (exitCode, signal...),
    then the object's `labels`, then `attributes` (image, name...) over both. Never raises."""
    try:
        merged = {**(extra or {}), **(labels or {}), **attributes} if labels or extra else attributes
        line = _line(kind, action, actor_id, merged, time.time_ns())
        if len(line) > MAX_LINE:  # huge labels or a long commit comment: keep the event, not them
            short = {k: v[:200] for k, v in {**(extra or {}), **attributes}.items()}
            line = _line(kind, action, actor_id, short, time.time_ns())
        _append(directory(root), line)
    except Exception:  # noqa: BLE001 - an event is never worth failing the command that made it
        pass


def message(kind: str, action: str, actor_id: str, attributes: dict, time_ns: int) -> dict:
    """docker's events.Message, in its JSON field order; Attributes sorted as Go marshals a map."""
    msg = {}
    if kind in ("container", "image"):  # the fields deprecated in API 1.22, still sent by 1.40-1.47
        msg["status"] = action
        msg["id"] = actor_id
        if kind == "container" and attributes.get("image"):
            msg["from"] = attributes["image"]
    msg["Type"] = kind
    msg["Action"] = action
    msg["Actor"] = {"ID": actor_id, "Attributes": {k: str(attributes[k]) for k in sorted(attributes)}}
    msg["scope"] = "local"
    msg["time"] = time_ns // 1_000_000_000
    msg["timeNano"] = time_ns
    return msg


def _line(kind: str, action: str, actor_id: str, attributes: dict, time_ns: int) -> bytes:
    return (fastjson.dumps(message(kind, action, actor_id, attributes, time_ns)) + "\n").encode()


def _append(events_dir: str, line: bytes) -> None:
    """Append one event. On a full, over-quota or read-only disk the event is dropped: the
    journal tells what happened, it must never be why a container's end goes unrecorded."""
    try:
        _write_line(events_dir, line)
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise


def _write_line(events_dir: str, line: bytes) -> None:
    path = os.path.join(events_dir, JOURNAL)
    try:
        fd = os.open(path, _APPEND, 0o600)
    except FileNotFoundError:
        make_dirs(events_dir)
        fd = os.open(path, _APPEND, 0o600)
    try:
        if os.write(fd, line) != len(line):
            os.write(fd, b"\n")  # a short write (disk full): end the torn line so the next one parses
        if os.fstat(fd).st_size > LIMIT:
            _rotate(events_dir, fd)
    finally:
        os.close(fd)


def _rotate(events_dir: str, fd: int) -> None:
    """Rename the full journal away, once: of the writers that saw it full, the first to take
    the lock renames it; the others find a new file at the path and leave it. A writer that
    opened the old file just before still appends to it (journal.1), where readers look too."""
    path = os.path.join(events_dir, JOURNAL)
    with Lock(os.path.join(events_dir, "lock")):
        try:
            current = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return
        mine = os.fstat(fd)
        if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev) and current.st_size > LIMIT:
            os.rename(path, os.path.join(events_dir, PREVIOUS))


@_quiet
def container(root: str, record: dict, action: str, extra: dict | None = None) -> None:
    """A container event: its labels, image (as the user named it) and name as attributes."""
    config = record["Config"]
    attributes = {"name": record["Name"].lstrip("/")}
    if config.get("Image"):
        attributes["image"] = config["Image"]
    emit(root, "container", action, record["Id"], attributes, config.get("Labels"), extra)


def exec_started(root: str, record: dict, argv: list[str]) -> str:
    """docker's exec_create and exec_start events of a new exec of `argv` in the container;
    its execID (for exec_died)."""
    exec_id = os.urandom(32).hex()
    command = " ".join(argv)
    container(root, record, "exec_create: " + command, {"execID": exec_id})
    container(root, record, "exec_start: " + command, {"execID": exec_id})
    return exec_id


def exec_died(root: str, record: dict, exec_id: str, exit_code: int) -> None:
    """docker's exec_die: the exec `exec_id` ended with `exit_code`."""
    container(root, record, "exec_die", {"execID": exec_id, "exitCode": str(exit_code)})


@_quiet
def started(root: str, record: dict) -> None:
    """A start as docker reports it: network connect, volume mount for each volume, start."""
    for network in _networks(root, record):
        emit(root, "network", "connect", network[0], {"container": record["Id"], **network[1]})
    for mount in record.get("Mounts") or ():
        if mount.get("Type") == "volume" and mount.get("Name"):
            emit(root, "volume", "mount", mount["Name"], {
                "container": record["Id"], "destination": mount.get("Destination", ""),
                "driver": mount.get("Driver") or "local", "propagation": mount.get("Propagation") or "",
                "read/write": "true" if mount.get("RW", True) else "false"})
    container(root, record, "start")


@_quiet
def died(root: str, record: dict, exit_code: int) -> None:
    """An end as docker (23+) reports it: the network disconnected and the volumes unmounted
    (its cleanup), then die with the exit code and how many seconds it ran."""
    for network in _networks(root, record):
        emit(root, "network", "disconnect", network[0], {"container": record["Id"], **network[1]})
    for mount in record.get("Mounts") or ():
        if mount.get("Type") == "volume" and mount.get("Name"):
            emit(root, "volume", "unmount", mount["Name"],
                 {"container": record["Id"], "driver": mount.get("Driver") or "local"})
    ran = 0
    started_at = record["State"].get("StartedAt") or ""
    if started_at and not started_at.startswith("0001-"):
        try:
            from berth.units import parse_rfc3339_ns  # lazy: only die events read times

            ran = max(0, (time.time_ns() - parse_rfc3339_ns(started_at)) // 1_000_000_000)
        except ValueError:
            pass
    container(root, record, "die", {"exitCode": str(exit_code), "execDuration": str(ran)})


def _networks(root: str, record: dict) -> list[tuple[str, dict]]:
    """(network ID, {name, type}) of each network the container is on: its network mode's,
    then the user-defined ones it was connected to, as docker reports each."""
    first = _network(root, record)
    found = [first] if first is not None else []
    mode = (record.get("HostConfig") or {}).get("NetworkMode") or ""
    for name, entry in ((record.get("NetworkSettings") or {}).get("Networks") or {}).items():
        if name != mode and name not in ("bridge", "host", "none") and (entry or {}).get("NetworkID"):
            found.append((entry["NetworkID"], {"name": name, "type": "bridge"}))
    return found


def _network(root: str, record: dict) -> tuple[str, dict] | None:
    """(network ID, {name, type}) of the network the container joins; None for container:<x>."""
    mode = (record.get("HostConfig") or {}).get("NetworkMode") or ""
    if not mode or mode.startswith("container:"):
        return None
    from berth.engine.networks import DRIVERS, network_ids  # lazy: only network events

    network_id = ((record.get("NetworkSettings") or {}).get("Networks") or {}).get(mode, {}).get("NetworkID")
    if not network_id:
        network_id = network_ids(root).get(mode, "")
    return network_id, {"name": mode, "type": DRIVERS.get(mode, "bridge")}  # a user-defined one is a bridge


@_quiet
def committed(root: str, record: dict, image_id: str, name: str, comment: str) -> None:
    """docker's commit: a container event naming the image made (imageRef: the familiar tag)."""
    container(root, record, "commit", {"comment": comment, "imageID": image_id, "imageRef": _familiar(name)})


@_quiet
def image(root: str, action: str, image_id: str, name: str = "", labels: dict | None = None) -> None:
    """An image event: `name` is the reference (shown familiar, "busybox:1") or, as docker
    gives it for import, load, save, untag and delete, the image ID."""
    emit(root, "image", action, image_id, {"name": _familiar(name) or image_id}, labels)


def _familiar(name: str) -> str:
    """A stored reference as docker shows it ("busybox:1"); an ID or "" as it is."""
    if not name or name.startswith("sha256:"):
        return name
    from berth.image import reference  # lazy: only image events

    try:
        return reference.parse(name).familiar()
    except ValueError:
        return name


def image_emitter(root: str):
    """What the image store calls for its events (the image layer does not know the engine)."""
    return lambda action, image_id, name="", labels=None: image(root, action, image_id, name, labels)


@_quiet
def volume(root: str, action: str, name: str, driver: str = "local") -> None:
    emit(root, "volume", action, name, {"driver": driver})


# -- reading -------------------------------------------------------------------------

def parse_filters(values: list[str]) -> dict:
    """--filter key=value as docker's CLI reads them (key lowercased, both trimmed)."""
    filters: dict[str, list[str]] = {}
    for item in values:
        if "=" not in item:
            raise UsageError(f'invalid argument "{item}" for "-f, --filter" flag: bad format of filter '
                                  "(expected name=value)\nSee 'berth events --help'.")
        key, _, value = item.partition("=")
        filters.setdefault(key.strip().lower(), []).append(value.strip())
    return filters


def matches(msg: dict, filters: dict) -> bool:
    """docker's events Filter.Include: values of one key OR'ed, keys AND'ed."""
    if not filters:
        return True
    actor = msg.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    kind, action = msg.get("Type", ""), msg.get("Action", "")
    events = filters.get("event")
    if events:
        fuzzy = any(v in ("health_status", "exec_create", "exec_start") for v in events)
        if not (_exact(events, action) or fuzzy and any(action.startswith(v) for v in events)):
            return False
    if not _exact(filters.get("type"), kind) or not _exact(filters.get("scope"), msg.get("scope", "")):
        return False
    for key in ("daemon", "container", "plugin", "volume", "network", "node", "service", "secret", "config"):
        wanted = filters.get(key)
        if wanted and not (_fuzzy(wanted, actor.get("ID", "")) or _fuzzy(wanted, attributes.get("name", ""))):
            return False
    wanted = filters.get("image")
    if wanted:
        name = attributes.get("name" if kind == "image" else "image", "")
        candidates = {actor.get("ID", ""), name, _strip_tag(actor.get("ID", "")), _strip_tag(name)}
        if not any(c in wanted for c in candidates):
            return False
    for label in filters.get("label") or ():
        key, eq, value = label.partition("=")
        if key not in attributes or eq and attributes[key] != value:
            return False
    return True


def _exact(wanted: list | None, value: str) -> bool:
    return not wanted or value in wanted


def _fuzzy(wanted: list, value: str) -> bool:
    """docker's FuzzyMatch on ID or name, applied to every event whatever its type: an event of
    another type passes only if its own ID or name does (so container=x keeps x's events only)."""
    return any(value.startswith(v) for v in wanted)


def _strip_tag(name: str) -> str:
    """docker's stripTag: the repository's familiar name ("busybox" for "busybox:1")."""
    from berth.image import reference  # lazy: only image events

    try:
        return reference.parse(name).familiar_name()
    except ValueError:
        return name


class _Tail:
    """One journal file read forward, whole lines only: a line still being written is kept
    for the next read."""

    __slots__ = ("fd", "ino", "rest")

    def __init__(self, fd: int):
        self.fd = fd
        self.ino = os.fstat(fd).st_ino
        self.rest = b""

    @classmethod
    def open(cls, path: str) -> "_Tail | None":
        try:
            return cls(os.open(path, _READ))
        except FileNotFoundError:
            return None

    def lines(self) -> list[bytes]:
        chunks = [self.rest]
        while chunk := os.read(self.fd, 1 << 16):
            chunks.append(chunk)
        data = b"".join(chunks)
        cut = data.rfind(b"\n") + 1
        self.rest = data[cut:]
        return data[:cut].splitlines()

    def close(self) -> None:
        os.close(self.fd)


def _ino(path: str) -> int | None:
    try:
        return os.stat(path, follow_symlinks=False).st_ino
    except FileNotFoundError:
        return None


def _open_pair(events_dir: str) -> tuple["_Tail | None", "_Tail | None"]:
    """journal.1 and journal as one consistent pair: if a rotation moved the journal between
    the two opens, open them again (else the rotated file's events would be skipped)."""
    previous_path, current_path = os.path.join(events_dir, PREVIOUS), os.path.join(events_dir, JOURNAL)
    while True:
        previous, current = _Tail.open(previous_path), _Tail.open(current_path)
        if (previous.ino if previous else None) == _ino(previous_path):
            return previous, current
        for tail in (previous, current):
            if tail is not None:
                tail.close()


def _decode(lines: list[bytes], since_ns: int | None, until_ns: int | None):
    for line in lines:
        try:
            msg = fastjson.loads(line)
            stamp = msg["timeNano"]
        except (ValueError, KeyError, TypeError):
            continue  # a line torn by a full disk
        if (since_ns is None or stamp >= since_ns) and (until_ns is None or stamp <= until_ns):
            yield msg


def watch(engine, since_ns: int | None = None, until_ns: int | None = None, filters: dict | None = None):
    """docker's GET /events: with --since or --until, the journal's events in that window
    first; then, unless --until has passed, new events as they are written, until --until
    (or for ever). Yields events.Message dicts; the caller stops it by closing it."""
    events_dir = directory(engine.paths.root)
    filters = filters or {}
    replay = since_ns is not None or until_ns is not None
    live = until_ns is None or until_ns > time.time_ns()
    if not live:
        previous, current = _open_pair(events_dir)
        try:
            for tail in (previous, current):
                if tail is not None:
                    yield from (m for m in _decode(tail.lines(), since_ns, until_ns) if matches(m, filters))
        finally:
            for tail in (previous, current):
                if tail is not None:
                    tail.close()
        return

    make_dirs(events_dir)
    follower = _Follower(events_dir)  # watching before reading: nothing falls between the two
    try:
        previous, current = _open_pair(events_dir)
        follower.older, follower.current = previous, current
        for tail in (previous, current):
            if tail is not None:
                lines = tail.lines()
                if replay:
                    yield from (m for m in _decode(lines, since_ns, until_ns) if matches(m, filters))
        while True:
            for msg in _decode(follower.wait(until_ns), None, until_ns):
                if matches(msg, filters):
                    yield msg
            if until_ns is not None and time.time_ns() >= until_ns:
                return
    finally:
        follower.close()


# inotify(7) masks: events on the journal directory and on the files in it
IN_MODIFY = 0x2
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class _Follower:
    """Waits on inotify for the journal directory to change (an append, a rotation) and reads
    what was added: no polling loop. After a rotation the rotated file stays open a while,
    for a writer that opened it just before and appends late."""

    def __init__(self, events_dir: str):
        import ctypes  # not on any hot path: only `berth events` follows

        libc = ctypes.CDLL(None, use_errno=True)
        self.path = os.path.join(events_dir, JOURNAL)
        self.fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self.fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)}")
        mask = IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
        if libc.inotify_add_watch(self.fd, os.fsencode(events_dir), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {events_dir}: {os.strerror(err)}")
        self.older: _Tail | None = None
        self.current: _Tail | None = None

    def wait(self, until_ns: int | None) -> list[bytes]:
        """Block until the journal changes (or `until_ns` passes); the lines added since."""
        import select  # lazy: only `events` follows

        timeout = None if until_ns is None else max(0.0, (until_ns - time.time_ns()) / 1e9)
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], timeout)
            except InterruptedError:
                continue
            break
        if not ready:
            return []
        try:
            while os.read(self.fd, 1 << 16):  # drain: the files themselves say what changed
                pass
        except BlockingIOError:
            pass
        lines = []
        for tail in (self.older, self.current):
            if tail is not None:
                lines += tail.lines()
        ino = _ino(self.path)
        if ino is not None and (self.current is None or ino != self.current.ino):  # rotated, or first made
            fresh = _Tail.open(self.path)
            if fresh is not None:
                if self.older is not None:
                    self.older.close()
                self.older, self.current = self.current, fresh
                lines += fresh.lines()
        return lines

    def close(self) -> None:
        for tail in (self.older, self.current):
            if tail is not None:
                tail.close()
        self.older = self.current = None
        os.close(self.fd)
