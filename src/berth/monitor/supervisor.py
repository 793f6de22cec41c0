"""The supervisor of one container: it owns the container's stdio (written to the json-file
log, and to our own stdout/stderr when attached), reaps it, records how it ended, applies
the restart policy and tears down.

It runs in the foreground CLI for an attached `run`/`start -a`, or in a process forked
from the CLI and detached from it (`run -d`, `start`): no interpreter is started before the
container runs. Once it runs, a detached supervisor execs the lean monitor (monitor.lean),
which holds only the container's stdio and log, and comes back here (resume) at its end."""

import os
import time

from berth import fastjson
from berth.errors import BerthError
from berth.monitor.lean import StdinFeed, copy_output, exec_python
from berth.monitor.logfile import LogWriter


class Stdio:
    """The container's side and our side of its stdin/stdout/stderr for one start (or exec).
    Without a tty the container gets pipes, never one of our own fds: our stdin or output
    may be the caller's terminal, which a process left in the container could read or write
    long after we returned. With `attach_stdin`, the pump copies our stdin into its pipe."""

    __slots__ = ("container", "ours", "stdin_writer", "_theirs", "_held")

    def __init__(self, tty: bool, open_stdin: bool, attach_stdin: bool = False):
        self._theirs = []  # fds made for the container: closed here once it has them
        self._held = []  # fds we keep open while it runs
        self.stdin_writer = None  # our end of its stdin pipe, when we feed it from our stdin
        if (open_stdin or attach_stdin) and not tty:
            stdin, writer = os.pipe()  # like docker, -i keeps stdin open with nobody attached
            self._theirs.append(stdin)
            self._held.append(writer)
            if attach_stdin:
                self.stdin_writer = writer
        else:
            stdin = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            self._theirs.append(stdin)
        if tty:  # the runtime gives the container its pty instead
            self.container = (stdin, 1, 2)
            self.ours = []
        else:
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            self._theirs += [out_w, err_w]
            self.container = (stdin, out_w, err_w)
            self.ours = [(out_r, "stdout"), (err_r, "stderr")]

    def started(self) -> None:
        for fd in self._theirs:
            _close(fd)
        self._theirs = []

    def stdin_feed(self) -> StdinFeed | None:
        """Our stdin fed into the container's stdin pipe (the feed then owns and closes our
        end), or None when its stdin is not attached to ours."""
        writer = self.stdin_writer
        if writer is None:
            return None
        self._held.remove(writer)
        self.stdin_writer = None
        try:
            os.fstat(0)
        except OSError:  # we have no stdin at all: the container reads EOF
            os.close(writer)
            return None
        return StdinFeed(0, writer)

    def close(self) -> None:
        self.started()
        for fd, _ in self.ours:
            _close(fd)
        for fd in self._held:
            _close(fd)
        self.ours = []
        self._held = []
        self.stdin_writer = None


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class Supervisor:
    def __init__(self, engine, container_id: str, attached: bool = False):
        self.engine = engine
        self.container_id = container_id
        self.attached = attached

    def launch(self, record: dict, attach_stdin: bool = False, console_size=None, restarting: bool = False):
        """Start the container with pipes (or its pty) that this process reads (and, with
        `attach_stdin`, writes from our stdin)."""
        config = record["Config"]
        stdio = Stdio(config["Tty"], config["OpenStdin"], attach_stdin)
        try:
            launched = self.engine.start(record, stdio=stdio.container, console_size=console_size,
                                         restarting=restarting)
        except BaseException:
            stdio.close()
            raise
        stdio.started()
        if config["Tty"]:
            stdio.ours = [(launched.console_fd, "stdout")]
        return launched, stdio

    def pump(self, launched, stdio: Stdio, log: LogWriter) -> int:
        """Copy the container's output to the log (and to us when attached) until it closes,
        feeding its stdin from ours when attached so, then reap the container and any orphans
        handed to us. Returns its exit code."""
        from berth.runtime.reap import reap_orphans, wait_exit_code

        copy_output(dict(stdio.ours), log, _write_all if self.attached else None, stdio.stdin_feed())
        code = wait_exit_code(launched.pid)
        reap_orphans()
        return code

    def run_detached(self, notify_fd: int, restarting: bool = False, backoff: float = 0.0) -> None:
        """The detached supervisor's life: start, report to the CLI, then supervise starts
        and restarts until the container stays stopped. Never returns."""
        engine = self.engine
        try:
            while True:
                try:
                    record = engine.load(self.container_id)
                    launched, stdio = self.launch(record, restarting=restarting)
                except (BerthError, OSError) as err:
                    err = self._explain(err)
                    if notify_fd >= 0:
                        _notify(notify_fd, {"error": str(err), "code": err.exit_code})
                    break
                if notify_fd >= 0:
                    _notify(notify_fd, {"pid": launched.pid})
                    os.close(notify_fd)
                    notify_fd = -1
                started = time.monotonic()
                self._go_lean(record, launched, stdio, started, backoff)  # returns only if it cannot
                log = LogWriter(record["LogPath"])
                try:
                    code = self.pump(launched, stdio, log)
                finally:
                    log.close()
                    stdio.close()
                backoff = self.after_exit(launched, code, started, backoff)
                if backoff is None:
                    break
                restarting = True
        except BaseException as err:
            if notify_fd >= 0:
                _notify(notify_fd, {"error": f"supervisor failed: {err}", "code": 125})
        finally:
            os._exit(0)

    def after_exit(self, launched, code: int, started: float, backoff: float) -> float | None:
        """Record the end; the back-off slept before the next start, or None when done."""
        engine = self.engine
        if not engine.finish(self.container_id, launched, code, allow_restart=True):
            return None
        # docker's back-off: 100 ms, doubling per consecutive restart, reset after 10 s up.
        backoff = 0.1 if time.monotonic() - started >= 10 or not backoff else min(backoff * 2, 60.0)
        if not self._sleep_unless_stopped(backoff):
            engine.end_restarting(self.container_id)
            return None
        return backoff

    def _go_lean(self, record: dict, launched, stdio: Stdio, started: float, backoff: float) -> None:
        """Exec the lean monitor (berth.monitor.lean) with what it needs, fds kept open."""
        from berth.engine.networks import held_sockets

        held = held_sockets(self.container_id)
        keep = [fd for fd, _ in stdio.ours] + list(stdio._held) + held
        for fd in keep:
            os.set_inheritable(fd, True)
        engine = self.engine
        plan = {"id": self.container_id, "root": engine.paths.root, "run_root": engine.paths.run_root,
                "config_file": engine.config_file, "overrides": engine.overrides, "pid": launched.pid,
                "log": record["LogPath"], "sources": stdio.ours, "stdin": list(stdio._held), "held": held,
                "started": started, "backoff": backoff}
        try:
            exec_python("berth.monitor.lean", "main", plan)
        except OSError:
            for fd in keep:
                os.set_inheritable(fd, False)


    def _explain(self, err: Exception) -> BerthError:
        """A start that failed because the container was removed meanwhile is NotFound."""
        from berth.errors import NotFound

        if not os.path.isdir(self.engine.paths.container(self.container_id)):
            return NotFound(f"No such container: {self.container_id}", 1)
        if isinstance(err, BerthError):
            return err
        return BerthError(f"starting container {self.container_id[:12]}: {err}")

    def _sleep_unless_stopped(self, seconds: float) -> bool:
        """The restart back-off; cut short (False) by a stop or a removal."""
        deadline = time.monotonic() + seconds
        while True:
            if self.engine.stopped_by_hand(self.container_id) or not self._exists():
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.05, left))

    def _exists(self) -> bool:
        return os.path.isdir(self.engine.paths.container(self.container_id))


def resume(plan_text: str) -> None:
    """The lean monitor saw the container end: record it, restart it if its policy says so.
    Runs in the same process (exec'd again), so it is still the container's supervisor."""
    try:
        plan = fastjson.loads(plan_text)
        for fd in plan["held"]:  # the published ports' sockets: released with the network
            os.close(fd)
        from berth.engine.containers import Engine
        from berth.paths import Paths
        from berth.runtime.cgroups import open_cgroup
        from berth.runtime.container import Launched

        engine = Engine(Paths(plan["root"], plan["run_root"]), plan["config_file"], plan["overrides"])
        supervisor = Supervisor(engine, plan["id"])
        launched = Launched(plan["pid"], open_cgroup("/berth/" + plan["id"]), None)
        backoff = supervisor.after_exit(launched, plan["code"], plan["started"], plan["backoff"])
        if backoff is not None:
            supervisor.run_detached(-1, restarting=True, backoff=backoff)
    finally:
        os._exit(0)


def pump_exec(launched, stdio: Stdio) -> int:
    """An attached exec without a tty: copy its output to ours (and our stdin to it when
    attached) until the exec'd process ends, then what it left in the pipes; its exit code.
    Not until the pipes close: a child it left in the background may hold them for ever."""
    from berth.runtime.reap import wait_exit_code

    exited = os.pidfd_open(launched.pid)
    try:
        copy_output(dict(stdio.ours), None, _write_all, stdio.stdin_feed(), exited)
    finally:
        os.close(exited)
    return wait_exit_code(launched.pid)


def _notify(fd: int, message: dict) -> None:
    try:
        os.write(fd, fastjson.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except BrokenPipeError:
            return
        data = data[written:]


def start_detached(engine, container_id: str) -> int:
    """Fork a supervisor for the container and wait until it has started it; its pid."""
    return DetachedStart(engine).start(container_id)


class DetachedStart:
    """A supervisor forked now, detached from us (own session, no inherited fds), that
    starts a container once told which. `run -d` forks it before creating the container:
    the supervisor then never holds what only creating needs (image store, names...),
    which it would otherwise keep, privately, for the container's whole life."""

    def __init__(self, engine):
        order_r, self.order_w = os.pipe()
        self.result_r, result_w = os.pipe()
        child = os.fork()
        if child == 0:
            try:
                os.close(self.order_w)
                os.close(self.result_r)
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
                _detach_stdio(keep=(order_r, result_w))
                engine.warm_up()
                container_id = _read_all(order_r).decode()
                if container_id:
                    Supervisor(engine, container_id).run_detached(result_w)
            finally:
                os._exit(0)
        os.close(order_r)
        os.close(result_w)
        os.waitpid(child, 0)

    def start(self, container_id: str) -> int:
        os.write(self.order_w, container_id.encode())
        os.close(self.order_w)
        data = _read_all(self.result_r)
        message = fastjson.loads(data.split(b"\n", 1)[0]) if data else {"error": "supervisor exited", "code": 125}
        if "error" in message:
            raise BerthError(message["error"], message.get("code", 125))
        return message["pid"]

    def cancel(self) -> None:
        """Nothing to start: the supervisor reads an empty order and exits."""
        os.close(self.order_w)
        os.close(self.result_r)


def _read_all(fd: int) -> bytes:
    data = b""
    while True:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    os.close(fd)
    return data


def _detach_stdio(keep: tuple[int, ...]) -> None:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)
    from berth.runtime import syscalls

    syscalls.prctl(syscalls.PR_SET_NAME, b"berth-monitor")  # what ps -o comm and top show
