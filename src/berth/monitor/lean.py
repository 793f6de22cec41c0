"""The idle part of a detached supervisor. Once the container runs with nobody attached,
the supervisor execs a fresh interpreter that imports only this (os, select, the json-file
writer, the attach socket's server): a container that runs for days then costs about a bare
interpreter, not everything starting it needed. When the container ends, it execs berth's
supervisor again to record the end, tell the attached clients and apply the restart policy
(supervisor.resume). Same process throughout: the container's parent (we are its
subreaper, kept across exec), the pid and start time berth recorded for the monitor."""

import os
import select
import sys

from berth import fastjson
from berth.monitor.attach import STDERR, STDOUT, AttachServer
from berth.monitor.logfile import LogWriter
from berth.runtime.reap import reap_orphans, wait_exit_code


def main(plan_fd: str) -> None:
    plan = read_plan(plan_fd)
    set_comm("berth-monitor")
    sources = {fd: stream for fd, stream in plan["sources"]}
    orphan = None
    if plan.get("adopted"):  # not our child (engine.adopt): its end is read from /proc
        from berth.monitor.orphan import Orphan  # lazy: only an adopted container

        orphan = Orphan(plan["pid"], plan["proc"])
    server = AttachServer.resumed(plan["attach"], plan["pid"], plan["console"])
    if orphan is not None:
        server.on_exit = orphan.seen_exit
        if server.exit_seen:
            orphan.seen_exit()
    log = open_log(plan["log"])
    probing = None
    if plan.get("probing"):
        from berth.monitor.probing import Probing  # lazy: only a container with a health check

        probing = Probing(plan["probing"])
    copy_output(sources, log, server=server, probing=probing)
    if probing is not None:
        probing.close()
    if log is not None:
        log.close()
    server.stop_listening()
    server.drain()
    for fd, _ in plan["sources"]:
        os.close(fd)
    if orphan is None:
        plan["code"] = wait_exit_code(plan["pid"])
        reap_orphans()
    else:
        plan["code"], plan["error"] = orphan.end()
        os.close(plan.pop("proc"))
    plan["attach"] = server.handoff()  # the clients still connected hear the exit code
    exec_python("berth.monitor.supervisor", "resume", plan)


def set_comm(name: str) -> None:
    """What ps -o comm and top show for this process (an exec'd interpreter is "python3")."""
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name)
    except OSError:
        pass


STREAM_FDS = {"stdout": 1, "stderr": 2}
STREAM_KINDS = {"stdout": STDOUT, "stderr": STDERR}
DRAIN_ROUNDS = 64  # after an exec'd process ended: 64 KiB reads per pipe, more than a pipe holds


def open_writer(path: str, max_size: int = -1, max_files: int = 1, compress: bool = False,
                attrs: dict | None = None) -> LogWriter:
    """The writer of a json-file log: one that rotates when it has a max size."""
    if max_size > 0:
        from berth.monitor.logrotate import RotatingLogWriter  # lazy: only a log with a max-size

        return RotatingLogWriter(path, max_size, max_files, compress, attrs)
    return LogWriter(path, max_size, max_files, compress, attrs)


def open_log(spec: dict | None):
    """The writer a log spec (engine.log_target, LogWriter.spec) describes: the json-file/local
    LogWriter, or the syslog driver with its cache; None: the container's output is kept nowhere
    (--log-driver none)."""
    if not spec:
        return None
    if "syslog" in spec:
        from berth.monitor.syslog import SyslogWriter  # lazy: only --log-driver syslog

        cache = {key: value for key, value in spec.items() if key != "syslog"}
        return SyslogWriter(spec["syslog"], open_writer(**cache) if cache else None)
    return open_writer(**spec)


def copy_output(sources: dict, log: LogWriter | None, echo=None, feed: "StdinFeed | None" = None,
                exited: int | None = None, server: AttachServer | None = None, probing=None) -> bool:
    """Copy the container's output ({fd: "stdout"|"stderr"}) to the json-file log until every
    source closes; with `echo(fd, data)`, also to our own stdout/stderr (an exec).
    With `feed`, our stdin goes into the container's stdin pipe meanwhile. With `exited` (a
    pidfd: an exec), copying ends when that process has ended, with what it left in the
    pipes: a child it started may hold them open for ever, and docker's exec returns then.
    With `server` (the attach socket), the output also goes to its clients and their input
    to the container; copying ends once the container has ended and every source closed, or
    (False) as soon as nobody is attached if the server asks for that (server.idle_return).
    With `probing` (monitor.probing), the container's health probes run meanwhile."""
    try:
        while sources or exited is not None or server is not None and not server.exit_seen:
            readers = [] if server is not None and server.paused() else list(sources)
            writers = []
            if feed is not None:
                if feed.pending:
                    writers.append(feed.theirs)
                else:
                    readers.append(feed.ours)
            if exited is not None:
                readers.append(exited)
            if server is not None:
                readers += server.readers()
                writers += server.writers()
            timeout = None
            if probing is not None:
                readers += probing.readers()
                timeout = probing.timeout()
            try:
                ready, writable, _ = select.select(readers, writers, [], timeout)
            except InterruptedError:
                continue
            if probing is not None:
                probing.handle(ready)
            if server is not None:
                server.handle(ready, writable)
                if server.idle():
                    return False
            for fd in ready:
                if fd in sources:
                    _copy_chunk(fd, sources, log, echo, server)
            if feed is not None and (writable or feed.ours in ready) and not feed.step():
                feed.close()
                feed = None
            if exited is not None and exited in ready:
                for _ in range(DRAIN_ROUNDS):
                    ready = select.select(list(sources), [], [], 0)[0] if sources else ()
                    if not ready:
                        break
                    for fd in ready:
                        _copy_chunk(fd, sources, log, echo, server)
                break
    finally:
        if feed is not None:
            feed.close()
        if log is not None:
            log.flush()
    return True


def _copy_chunk(fd: int, sources: dict, log: LogWriter | None, echo, server: AttachServer | None = None) -> None:
    try:
        data = os.read(fd, 65536)
    except (BlockingIOError, InterruptedError):  # a pty master is non-blocking (it takes stdin too)
        return
    except OSError:  # EIO from a pty master: the container side is gone
        data = b""
    if not data:
        del sources[fd]
        return
    if log is not None:
        log.write(sources[fd], data)
    if echo is not None:
        echo(STREAM_FDS[sources[fd]], data)
    if server is not None:
        server.broadcast(STREAM_KINDS[sources[fd]], data)


class StdinFeed:
    """Our stdin copied into the container's stdin pipe (docker's -i without -t). The pipe is
    closed at our EOF, so the container sees EOF, or once the container closed its end."""

    __slots__ = ("ours", "theirs", "pending")

    def __init__(self, ours: int, theirs: int):
        self.ours = ours
        self.theirs = theirs
        self.pending = b""
        # A container that does not read must not stop us copying its output.
        os.set_blocking(theirs, False)

    def step(self) -> bool:
        """Read ours when nothing is pending, write what is pending; False once done."""
        if not self.pending:
            try:
                self.pending = os.read(self.ours, 65536)
            except BlockingIOError:  # our stdin is non-blocking and was raced empty
                return True
            except OSError:  # EIO: our terminal hung up
                return False
            if not self.pending:
                return False
        try:
            written = os.write(self.theirs, self.pending)
        except BlockingIOError:
            return True
        except OSError:  # EPIPE: the container closed its stdin
            return False
        self.pending = self.pending[written:]
        return True

    def close(self) -> None:
        if self.theirs >= 0:
            os.close(self.theirs)
            self.theirs = -1


def exec_python(module: str, function: str, plan: dict) -> None:
    """Replace this process by `module.function(plan_fd)` in a fresh interpreter (no site, our
    own package path), keeping every inheritable fd. Never returns. The plan goes in a memfd
    whose number is the argument (read_plan), not on the command line: every local user can
    read a command line (ps), and a health check's plan holds the container's environment;
    and the interpreter keeps several copies of a long argv (~360 KB of heap for a health
    check's ~24 KB plan, its seccomp program). The command line shows the plan's root and
    container id after it, as a shim's shows its container, for ps."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    boot = f"import sys; sys.path.insert(0, {package_parent!r}); from {module} import {function}; " \
           f"{function}(sys.argv[1])"
    plan_fd = os.memfd_create("berth-plan", 0)  # inheritable: no MFD_CLOEXEC
    try:
        from berth.fs import write_all  # lazy: this interpreter is about to be replaced

        write_all(plan_fd, fastjson.dumps(plan).encode())
        os.lseek(plan_fd, 0, os.SEEK_SET)
        os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", boot, str(plan_fd), plan["root"], plan["id"]])
    finally:  # the exec failed
        os.close(plan_fd)


def read_plan(plan_fd: str) -> dict:
    """The plan exec_python handed over, its memfd closed (nothing we start inherits it); or
    the plan itself, which a lean monitor of an earlier berth, running across an upgrade, still
    passes on its command line when its container ends."""
    if plan_fd.startswith("{"):
        return fastjson.loads(plan_fd)
    return fastjson.loads(read_all(int(plan_fd)))


def read_all(fd: int) -> bytes:
    """Everything until EOF; the fd is closed."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)
