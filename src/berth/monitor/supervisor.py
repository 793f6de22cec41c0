"""The supervisor of one container: it owns the container's stdio (written to the json-file
log, and served to any number of clients on its attach socket, monitor.attach), reaps it,
records how it ended, applies the restart policy and tears down.

It is a process forked from the CLI and detached from it, for every start (`run`, `run -d`,
`start`, `start -a`): no interpreter is started before the container runs, and the
container outlives the CLI, as with conmon. An attached `run` or `start -a` is a client
connected from before the start. Once the container runs with nobody attached, the
supervisor execs the lean monitor (monitor.lean), which holds only the container's stdio,
log and attach socket, and comes back here (resume) at its end.

The engine drives it through the `engine` object it is given (load, start, finish,
held_sockets...): nothing here imports the engine."""

import _socket
import errno
import os
import time

from berth import fastjson
from berth.errors import BerthError, NotFound, from_kind
from berth.fs import make_dirs, write_all
from berth.monitor.attach import AttachServer, listen
from berth.monitor.lean import StdinFeed, copy_output, exec_python, open_log, read_all, read_plan
from berth.paths import Paths
from berth.runtime.reap import reap_orphans, wait_exit_code
from berth.units import format_rfc3339_nano_ns


class Stdio:
    """The container's side and our side of its stdin/stdout/stderr for one start (or exec).
    Without a tty the container gets pipes, never one of our own fds: our stdin or output
    may be the caller's terminal, which a process left in the container could read or write
    long after we returned. With `attach_stdin` (an exec), the pump copies our stdin into
    its pipe; a container's stdin pipe is fed by the attach socket's server (take_stdin)."""

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

    def take_stdin(self) -> int:
        """Our end of its stdin pipe, now the caller's to close; -1 if it has none."""
        for fd in self._held:
            self._held.remove(fd)
            return fd
        return -1

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
    def __init__(self, engine, container_id: str):
        self.engine = engine
        self.container_id = container_id

    def launch(self, record: dict, console_size=None, restarting: bool = False, attach_stdin: bool = False):
        """Start the container with pipes (or its pty) that this process reads and writes
        (`attach_stdin`: its stdin fed from ours, run_here)."""
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

    def probing(self, record: dict, launched):
        """The health probing of this run (monitor.probing), None without a health check:
        built once it runs, after the caller was told (it costs an exec's spec)."""
        if not self.engine.probed(record):
            return None
        try:
            return self.engine.probing(self.container_id, launched.pid)
        except (BerthError, OSError):  # it ended already, or was paused: no probing of this run
            return None

    def serve(self, record: dict, first: int = -1, open_stdin: bool = True) -> AttachServer:
        """The attach socket for this run of the container; `first`, a client connected
        before the start (run, start -a), is greeted now: it sees every byte of output.
        Without `open_stdin`, no client gets the container's stdin (we feed it)."""
        config = record["Config"]
        directory = self.engine.paths.container_run(self.container_id)
        make_dirs(directory)
        server = AttachServer(directory, config["Tty"], open_stdin and config["OpenStdin"],
                              bool(config.get("StdinOnce")), listen(directory))
        if first >= 0:
            server.greet_first(first)
        return server

    def run_detached(self, notify_fd: int, restarting: bool = False, backoff: float = 0.0, first: int = -1,
                     record: dict | None = None) -> None:
        """The detached supervisor's life: start, report to the CLI, then supervise starts
        and restarts until the container stays stopped. `first`: a client connected from
        before the start; `record`: the container as its creator just read it. Never returns."""
        engine = self.engine
        try:
            while True:
                server = None
                try:
                    if record is None:  # (engine.start reads it again, under its lock)
                        record = engine.load(self.container_id)
                    server = self.serve(record, first)
                    first = -1
                    launched, stdio = self.launch(record, console_size=server.size, restarting=restarting)
                except (BerthError, OSError) as err:
                    if server is not None:
                        server.close()
                    elif first >= 0:
                        os.close(first)
                    if not self._exists():  # removed meanwhile: leave no run directory behind
                        try:
                            os.rmdir(engine.paths.container_run(self.container_id))
                        except OSError:
                            pass
                    err = self._explain(err)
                    if notify_fd >= 0:
                        _notify(notify_fd, {"error": str(err), "kind": err.kind})
                    break
                console = launched.console_fd if record["Config"]["Tty"] else -1
                server.started(launched.pid, stdio.take_stdin(), -1 if console is None else console)
                if notify_fd >= 0:
                    _notify(notify_fd, {"pid": launched.pid})
                    os.close(notify_fd)
                    notify_fd = -1
                started = time.monotonic()
                probing = self.probing(record, launched)
                self._supervise(record, launched, dict(stdio.ours), server, started, backoff, probing)
                server.stop_listening()
                server.drain()
                code = wait_exit_code(launched.pid)
                reap_orphans()
                backoff = self.after_exit(launched, code, started, backoff, server)
                stdio.close()
                if backoff is None:
                    break
                restarting = True
                record = None
        except BaseException as err:
            if notify_fd >= 0:
                _notify(notify_fd, {"error": f"supervisor failed: {err}"})
        finally:
            os._exit(0)

    def run_here(self, record: dict, attach_stdin: bool, on_started=None) -> int:
        """The fast path of a foreground `run`/`start -a` without a tty: this process (the
        CLI) supervises the container itself, its output copied to our stdout/stderr (and
        the log, and any client of the attach socket, served meanwhile), our stdin to its
        stdin with `attach_stdin`. No fork, no second process to hand over to and wait
        for; the price: the container cannot outlive us, so no restart policy, no detach,
        no --sig-proxy=false take this path. `on_started(pid)` once it runs. Its exit code."""
        server = self.serve(record, open_stdin=False)  # stdin is ours to feed
        try:
            launched, stdio = self.launch(record, attach_stdin=attach_stdin)
        except BaseException:
            server.close()
            raise
        server.started(launched.pid)
        if on_started is not None:
            on_started(launched.pid)
        log = open_log(self.engine.log_target(record))
        code = None
        probing = self.probing(record, launched)
        try:
            copy_output(dict(stdio.ours), log, _write_all, stdio.stdin_feed(), server=server, probing=probing)
            server.stop_listening()
            server.drain()
            code = wait_exit_code(launched.pid)
            reap_orphans()
        finally:
            if probing is not None:
                probing.close()
            if log is not None:
                log.close()
            stdio.close()
            if code is None:  # we are being torn down: the container cannot outlive its supervisor
                _kill(launched.pid)
                code = wait_exit_code(launched.pid)
            self.engine.finish(self.container_id, launched, code)
            server.finish(code)
        return code

    def _supervise(self, record: dict, launched, sources: dict, server: AttachServer, started: float,
                   backoff: float, probing=None) -> None:
        """Copy the output to the log and the clients (and probe the container's health)
        until the container ends; whenever nobody is attached, the lean monitor takes over
        (and this never returns)."""
        log = open_log(self.engine.log_target(record))
        try:
            server.idle_return = True
            while True:
                if server.idle():
                    if log is not None:
                        log.flush()
                    # returns if it cannot
                    self._go_lean(launched, sources, server, started, backoff, log, probing)
                    server.idle_return = False
                if copy_output(sources, log, server=server, probing=probing):
                    return
        finally:
            if probing is not None:
                probing.close()
            if log is not None:
                log.close()

    def after_exit(self, launched, code: int, started: float, backoff: float,
                   server: AttachServer | None = None, error: str = "") -> float | None:
        """Record the end and tell the clients; the back-off slept before the next start,
        or None when done. `error`: State.Error, for an end whose status is unknown (an
        adopted container's, monitor.orphan)."""
        engine = self.engine
        if error:
            restart = engine.finish(self.container_id, launched, code, allow_restart=True, error=error)
        else:
            restart = engine.finish(self.container_id, launched, code, allow_restart=True)
        if server is not None:
            server.finish(code)
        if not restart:
            return None
        # docker's back-off: 100 ms, doubling per consecutive restart, reset after 10 s up.
        backoff = 0.1 if time.monotonic() - started >= 10 or not backoff else min(backoff * 2, 60.0)
        if not self._sleep_unless_stopped(backoff):
            engine.end_restarting(self.container_id)
            return None
        return backoff

    def _go_lean(self, launched, sources: dict, server: AttachServer, started: float, backoff: float,
                 log, probing=None) -> None:
        """Exec the lean monitor (berth.monitor.lean) with what it needs, fds kept open."""
        engine = self.engine
        held = engine.held_sockets(self.container_id)
        keep = list(sources) + held
        for fd in keep:
            os.set_inheritable(fd, True)
        console = launched.console_fd if launched.console_fd in sources else -1
        plan = {"id": self.container_id, "root": engine.paths.root, "run_root": engine.paths.run_root,
                "config_file": engine.config_file, "overrides": engine.overrides, "pid": launched.pid,
                "cgroup": launched.cgroup.path,
                "engine": [type(engine).__module__, type(engine).__qualname__],
                "log": log.spec() if log is not None else None,
                "sources": [[fd, stream] for fd, stream in sources.items()], "console": console, "held": held,
                "started": started, "backoff": backoff, "attach": server.handoff(),
                "probing": probing.handoff() if probing is not None else None}
        try:
            exec_python("berth.monitor.lean", "main", plan)
        except OSError:  # nothing inheritable may reach the next container we start
            for fd in keep + list(server.attachers) + [plan["attach"]["listener"], plan["attach"]["target"]]:
                if fd >= 0:
                    os.set_inheritable(fd, False)

    def _explain(self, err: Exception) -> BerthError:
        """A start that failed because the container was removed meanwhile is NotFound."""
        if not os.path.isdir(self.engine.paths.container(self.container_id)):
            return NotFound(f"No such container: {self.container_id}")
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


def resume(plan_fd: str) -> None:
    """The lean monitor saw the container end: record it, tell the clients, restart it if
    its policy says so. Runs in the same process (exec'd again), so it is still the
    container's supervisor; the engine is rebuilt as the same type it was before the exec."""
    try:
        plan = read_plan(plan_fd)
        for fd in plan["held"]:  # the published ports' sockets: released with the network
            os.close(fd)
        from berth.runtime.cgroups import cgroup_path, open_cgroup  # lazy: not for `restart`
        from berth.runtime.container import Launched  # lazy: only resume and adopt

        engine = engine_from(plan)
        supervisor = Supervisor(engine, plan["id"])
        server = AttachServer.resumed(plan["attach"], 0)
        launched = Launched(plan["pid"], open_cgroup(plan.get("cgroup") or cgroup_path(plan["id"])), None)
        backoff = supervisor.after_exit(launched, plan["code"], plan["started"], plan["backoff"], server,
                                        plan.get("error") or "")
        if backoff is not None:
            supervisor.run_detached(-1, restarting=True, backoff=backoff)
    finally:
        os._exit(0)


def engine_from(plan: dict):
    """The engine rebuilt in a process exec'd from a supervisor, as the same type it was
    (a plan's "engine", "root", "run_root", "config_file", "overrides")."""
    module, name = plan["engine"]
    engine_type = getattr(__import__(module, fromlist=[name]), name)
    return engine_type(Paths(plan["root"], plan["run_root"]), plan["config_file"], plan["overrides"])


def adopt(engine, record: dict, pid: int, proc_fd: int, sources: list, notify_fd: int, lost_since: float,
          alive: bool) -> None:
    """The life of a supervisor forked (engine.adopt) for a container whose supervisor was
    killed: `pid` is its pid 1, not our child, known through `proc_fd` (monitor.orphan);
    `sources`, new read ends of its output pipes. Alive, it is watched by the lean monitor,
    whose end (resume) records the exit and applies the restart policy; already ended, that
    is done now and `notify_fd` closed once it is recorded. Never returns."""
    from berth.monitor.orphan import Orphan  # lazy: only adopt

    container_id = record["Id"]
    try:
        os.setpgid(0, 0)
        if alive:  # still under the caller's lock on the container (its fd, until the next line)
            engine.serve_ipv6_again(record)
        keep = [fd for fd, _ in sources] + [fd for fd in (proc_fd, notify_fd) if fd >= 0]
        _detach_stdio(keep=tuple(keep))  # the caller's fds go, its lock on the container first
        if not alive:
            from berth.runtime.container import Launched  # lazy: only resume and adopt

            code, error = Orphan(pid, proc_fd).end()
            supervisor = Supervisor(engine, container_id)
            launched = Launched(pid, engine.cgroup(record), None)
            backoff = supervisor.after_exit(launched, code, time.monotonic(), 0.0, None, error)
            os.close(notify_fd)
            if backoff is not None:
                supervisor.run_detached(-1, restarting=True, backoff=backoff)
            return
        os.close(notify_fd)
        config = record["Config"]
        since = format_rfc3339_nano_ns(int(lost_since * 1e9))
        how = "read again from now" if sources else "not recoverable (its terminal died with the supervisor)"
        target = engine.log_target(record)
        log = open_log(target)
        if log is not None:
            log.write("stderr", f"berth: the container's supervisor was killed: its output since {since} "
                                f"may be lost, and is {how}\n".encode())
            log.close()
        directory = engine.paths.container_run(container_id)
        make_dirs(directory)
        server = AttachServer(directory, config["Tty"], False, bool(config.get("StdinOnce")), listen(directory))
        for fd in [fd for fd, _ in sources] + [proc_fd]:
            os.set_inheritable(fd, True)
        plan = {"id": container_id, "root": engine.paths.root, "run_root": engine.paths.run_root,
                "config_file": engine.config_file, "overrides": engine.overrides, "pid": pid,
                "cgroup": engine.cgroup(record).path,
                "engine": [type(engine).__module__, type(engine).__qualname__],
                "log": target, "sources": [[fd, stream] for fd, stream in sources],
                "console": -1, "held": [], "started": time.monotonic(), "backoff": 0.0,
                "attach": server.handoff(), "adopted": True, "proc": proc_fd,
                "probing": _probing_plan(engine, record, pid)}
        exec_python("berth.monitor.lean", "main", plan)
    finally:
        os._exit(0)


def _probing_plan(engine, record: dict, pid: int) -> dict | None:
    """An adopted container's health probing goes on under its new supervisor."""
    if not engine.probed(record):
        return None
    try:
        probing = engine.probing(record["Id"], pid)
    except (BerthError, OSError):
        return None
    return probing.handoff() if probing is not None else None


def pump_exec(launched, stdio: Stdio) -> int:
    """An attached exec without a tty: copy its output to ours (and our stdin to it when
    attached) until the exec'd process ends, then what it left in the pipes; its exit code.
    Not until the pipes close: a child it left in the background may hold them for ever."""
    exited = os.pidfd_open(launched.pid)
    try:
        copy_output(dict(stdio.ours), None, _write_all, stdio.stdin_feed(), exited)
    finally:
        os.close(exited)
    return wait_exit_code(launched.pid)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _notify(fd: int, message: dict) -> None:
    try:
        os.write(fd, fastjson.dumps(message).encode() + b"\n")
    except OSError:
        pass


def _write_all(fd: int, data: bytes) -> None:
    """Echo to our stdout/stderr; a reader that went away (`| head`) is not an error, nor a
    full disk under a redirected output: what cannot be written is dropped, and the
    container, which must never die of our output, runs on."""
    try:
        write_all(fd, data)
    except BrokenPipeError:
        pass
    except OSError as err:
        if err.errno not in DISK_ERRORS:
            raise


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO)


def start_detached(engine, container_id: str) -> int:
    """Fork a supervisor for the container and wait until it has started it; its pid."""
    return DetachedStart(engine).start(container_id)


class DetachedStart:
    """A supervisor forked now, detached from us (a process group of its own, no inherited
    fds), that starts a container once told which. `run -d` forks it before creating the
    container: the supervisor then never holds what only creating needs (image store,
    names...), which it would otherwise keep, privately, for the container's whole life.

    With `attach`, `self.attacher` is a socket connected to it from the start: a client of
    its attach socket (monitor.attach) that sends its HELLO before start(); the supervisor
    takes it before the container runs (the foreground `run`, which forks it once the
    container is created, and `start -a`). `warm`: the supervisor begins what the start
    needs (engine.warm_up) while we create, unless we did. `record`: the container, when
    it exists already: the supervisor starts it at once.

    One fork, not a daemon's two: a process group of its own keeps the terminal's signals
    away (the sig-proxy forwards what the user means), and not leading a session, it can
    never acquire a controlling terminal, whatever it opens. Its parent (we) exits soon."""

    def __init__(self, engine, attach: bool = False, warm: bool = True, record: dict | None = None):
        order_r, self.order_w = os.pipe()
        self.result_r, result_w = os.pipe()
        self.attacher = None
        theirs = -1
        if attach:
            self.attacher, other = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
            theirs = other.detach()
        child = os.fork()
        if child == 0:
            try:
                os.setpgid(0, 0)
                os.close(self.order_w)
                os.close(self.result_r)
                if self.attacher is not None:
                    self.attacher.detach()  # its fd goes with the others below; the object must not close another
                _detach_stdio(keep=(order_r, result_w) + ((theirs,) if theirs >= 0 else ()))
                if warm:
                    engine.warm_up()
                container_id = record["Id"] if record is not None else read_all(order_r).decode()
                if container_id:
                    Supervisor(engine, container_id).run_detached(result_w, first=theirs, record=record)
            finally:
                os._exit(0)
        try:
            os.setpgid(child, child)  # as the child does: whichever runs first, no terminal signal reaches it
        except OSError:  # it did already, and went on
            pass
        os.close(order_r)
        os.close(result_w)
        if theirs >= 0:
            os.close(theirs)

    def start(self, container_id: str) -> int:
        os.write(self.order_w, container_id.encode())
        os.close(self.order_w)
        data = read_all(self.result_r)
        message = fastjson.loads(data.split(b"\n", 1)[0]) if data else {"error": "supervisor exited"}
        if "error" in message:
            raise from_kind(message.get("kind"), message["error"])
        return message["pid"]

    def cancel(self) -> None:
        """Nothing to start: the supervisor reads an empty order and exits."""
        os.close(self.order_w)
        os.close(self.result_r)
        if self.attacher is not None:
            self.attacher.close()


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
    from berth.runtime import syscalls  # lazy: not for `restart`, which loads this module

    syscalls.prctl(syscalls.PR_SET_NAME, b"berth-monitor")  # what ps -o comm and top show
