"""One way to run a piece of work in a forked child of ours: the copy of `cp`, the copy-up
of a volume, the second writer of a commit. The child dies with its caller
(PR_SET_PDEATHSIG), may get a private mount namespace of its own (whatever it mounts goes
away with it, the host's mount table never changes), and never returns into the caller's
stack: it ends with os._exit whatever happens. What work() returns comes back through a pipe
(anything marshal carries); a BerthError it raises is raised again in the caller with its
kind, so errors crossing the fork keep what they are."""

import _signal
import marshal
import os
import sys

from berth.errors import BerthError, from_kind

_RESULT, _ERROR, _INTERRUPTED = 0, 1, 2


class Forked:
    """work() running in a forked child, started by the constructor; join() waits for it and
    returns its result. Options: `private_mounts` (unshare the mount namespace, / made
    rprivate, before work), `umask` (set in the child), `close_fds` (the child keeps only
    stdio and its result pipe: locks and files stay the caller's alone), `errors` (BerthError
    subclasses that keep their class across the pipe, not only their kind), `name` (what
    the process is called in an error). `die_with_caller=False` skips PR_SET_PDEATHSIG,
    whose ctypes import costs the child ~2 ms before work() starts: for a helper that holds
    nothing of ours (close_fds) and watches its parent itself (commit's second writer)."""

    __slots__ = ("pid", "name", "_reader", "_errors")

    def __init__(self, work, *, private_mounts: bool = False, umask: int | None = None, close_fds: bool = False,
                 die_with_caller: bool = True, errors: tuple = (), name: str = "helper"):
        self.name = name
        self._errors = errors
        sys.stdout.flush()  # or the child would write what we buffered a second time
        sys.stderr.flush()
        reader, writer = os.pipe2(os.O_CLOEXEC)
        parent = os.getpid()
        try:
            pid = os.fork()
        except BaseException:
            os.close(reader)
            os.close(writer)
            raise
        if pid == 0:
            try:
                os.close(reader)
                _child(work, writer, parent, private_mounts, umask, close_fds, die_with_caller, errors)
            finally:
                os._exit(0)
        os.close(writer)
        self.pid = pid
        self._reader = reader

    def join(self):
        """What work() returned; its BerthError (kind kept), KeyboardInterrupt if it was
        interrupted, or a BerthError if it died without a word."""
        chunks = []
        try:
            while chunk := os.read(self._reader, 65536):
                chunks.append(chunk)
        finally:
            os.close(self._reader)
            self._reader = -1
            status = self._wait()
        try:
            reply = marshal.loads(b"".join(chunks))
        except (EOFError, ValueError, TypeError):
            raise BerthError(f"the {self.name} process ended without a result ({_describe(status)})") from None
        if reply[0] == _RESULT:
            return reply[1]
        if reply[0] == _INTERRUPTED:
            raise KeyboardInterrupt
        _, kind, message, index = reply
        raise self._errors[index](message) if 0 <= index < len(self._errors) else from_kind(kind, message)

    def kill(self) -> None:
        """End it now (the caller failed first) and reap it."""
        if self.pid is not None:
            try:
                os.kill(self.pid, _signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait()
        if self._reader >= 0:
            os.close(self._reader)
            self._reader = -1

    def _wait(self) -> int:
        pid, self.pid = self.pid, None
        if pid is None:
            return 0
        while True:
            try:
                return os.waitpid(pid, 0)[1]
            except InterruptedError:
                continue


def run_forked(work, **options):
    """Run work() in a forked child (Forked's options) and return what it returned."""
    return Forked(work, **options).join()


def _child(work, writer: int, parent: int, private_mounts: bool, umask: int | None, close_fds: bool,
           die_with_caller: bool, errors: tuple) -> None:
    try:
        if close_fds:
            keep_only_fds(writer)
        if die_with_caller or private_mounts:
            from berth.runtime import syscalls as sc  # lazy: only the child needs ctypes
        if die_with_caller:
            sc.prctl(sc.PR_SET_PDEATHSIG, _signal.SIGKILL)  # never outlive the caller (nor its locks)
            if os.getppid() != parent:  # it died before prctl took effect
                os._exit(1)
        if private_mounts:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
        if umask is not None:
            os.umask(umask)
        reply = (_RESULT, work())
    except BerthError as err:
        index = next((i for i, kind in enumerate(errors) if isinstance(err, kind)), -1)
        reply = (_ERROR, err.kind, str(err), index)
    except KeyboardInterrupt:
        reply = (_INTERRUPTED,)
    except BaseException as err:  # noqa: BLE001 - reported to the caller, never raised here
        if os.environ.get("BERTH_DEBUG"):
            import traceback  # lazy: only BERTH_DEBUG

            traceback.print_exc()
        reply = (_ERROR, BerthError.kind, f"{type(err).__name__}: {err}", -1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        data = marshal.dumps(reply)
    except ValueError as err:  # a result marshal cannot carry is a bug of the caller's
        data = marshal.dumps((_ERROR, BerthError.kind, f"ValueError: {err}", -1))
    view = memoryview(data)
    while view:
        view = view[os.write(writer, view):]


def keep_only_fds(*keep: int) -> None:
    """Close every fd but stdio and `keep`, where -1 stands for none (os.closerange(3, -1) is
    no no-op: it closes every fd from 3 up, as close_range(3, ~0) does)."""
    low = 3
    for fd in sorted(fd for fd in keep if fd >= low):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"
