"""The events journal of an engine root, written: docker's event messages (`GET /events`:
Type, Action, Actor{ID, Attributes}, scope, time, timeNano, and the older status/id/from), one
JSON line each appended to <root>/events/journal. A shared utility: the engine (engine.events)
and a container's lean supervisor (its health probes) write here; engine.events reads it back.

Emitting is one O_APPEND write per event (lines stay under PIPE_BUF, so concurrent writers
never interleave) and never fails a command: an event that cannot be written (a full disk)
is dropped. Past LIMIT bytes the journal is renamed to journal.1 (the one previous file
kept), under a lock taken only to rotate. Nothing here is imported beyond errno, os, time,
fastjson and fs: emitting is on `run`'s hot path."""

import errno
import os
import time

from berth import fastjson
from berth.fs import Lock, make_dirs

LIMIT = 1 << 20  # bytes of the current file before it rotates; one previous file is kept
MAX_LINE = 4000  # below PIPE_BUF (4096): one write of a line is never split or interleaved
JOURNAL = "journal"
PREVIOUS = "journal.1"
_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def directory(root: str) -> str:
    return os.path.join(root, "events")


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


class Appender:
    """A long-lived writer's journal (a supervisor's health probes: a few events a second
    for as long as the container runs): the file stays open, so an append is one write and
    the fstat that notices a full file. A rotation by anyone else leaves our fd on the old
    file, which is past LIMIT then: the next append sees that, and reopens the path once it
    wrote that event (into journal.1, where readers look too)."""

    __slots__ = ("events_dir", "fd")

    def __init__(self, root: str):
        self.events_dir = directory(root)
        self.fd = -1

    def append(self, lines: bytes) -> None:
        """Whole lines (each under MAX_LINE), in one O_APPEND write: never interleaved with
        another writer's. Never raises: a failed event is dropped, the file reopened next time."""
        try:
            if self.fd < 0:
                path = os.path.join(self.events_dir, JOURNAL)
                try:
                    self.fd = os.open(path, _APPEND, 0o600)
                except FileNotFoundError:
                    make_dirs(self.events_dir)
                    self.fd = os.open(path, _APPEND, 0o600)
            if os.write(self.fd, lines) != len(lines):
                os.write(self.fd, b"\n")
            if os.fstat(self.fd).st_size > LIMIT:
                _rotate(self.events_dir, self.fd)
                self.close()
        except Exception:  # noqa: BLE001 - as emit: an event never fails what made it
            self.close()

    def close(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1


class Template:
    """One kind of event of one actor formatted once, with marks where `fields` (attributes
    that change from event to event: an exec ID, an exit code) and the time go:
    fill(values, time_ns) is then a few str.replace, not a dict walked and encoded."""

    __slots__ = ("text", "marks", "time_mark")

    def __init__(self, kind: str, action: str, actor_id: str, attributes: dict, fields: tuple = ()):
        token = os.urandom(8).hex()
        self.marks = [f'"{token}{i}"' for i in range(len(fields))]
        self.time_mark = f'"{token}t"'
        marked = {name: f"{token}{i}" for i, name in enumerate(fields)}
        msg = message(kind, action, actor_id, {**marked, **attributes}, 0)
        if len(fastjson.dumps(msg)) > MAX_LINE - 200:  # as emit: keep the event, not huge attributes
            msg = message(kind, action, actor_id, {**marked, **{k: str(v)[:200] for k, v in attributes.items()}}, 0)
        msg["time"] = msg["timeNano"] = f"{token}t"
        self.text = fastjson.dumps(msg) + "\n"

    def fill(self, values: tuple, time_ns: int) -> bytes:
        """The line: `values` (strings, in the order of `fields`) and the time put in."""
        text = self.text.replace(self.time_mark, str(time_ns // 1_000_000_000), 1)
        text = text.replace(self.time_mark, str(time_ns), 1)
        for mark, value in zip(self.marks, values, strict=True):
            text = text.replace(mark, fastjson.dumps(value), 1)
        return text.encode()


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
