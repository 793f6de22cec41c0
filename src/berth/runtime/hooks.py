"""OCI runtime hooks (runtime-spec config.md, "POSIX-platform Hooks"): each kind's entries run
in order, each as a process with its path, args and env, the container's state JSON on stdin,
killed when its timeout passes.

Where each kind runs: prestart and createRuntime in the runtime (the process that forks the
container, once the container's mounts are made); createContainer in the container's pid 1
before pivot_root; startContainer in pid 1 once `start` is called, just before exec (runc's
places); poststart and poststop in `berth-runtime start` and `delete`.

Imported only for a bundle that has hooks (the engine sets none). Pid 1 inherits this module
from its parent and runs startContainer hooks after pivot_root, where nothing can be imported
from disk: everything needed is imported here, at the top."""

import _signal as signal  # `signal` imports enum
import os
import select
import time

from berth import fastjson as json
from berth.errors import BerthError, InvalidArgument

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
# Run while pid 1 waits between its mounts and pivot_root.
BEFORE_PIVOT = ("prestart", "createRuntime", "createContainer")
_OUTPUT_SHOWN = 1000  # characters of a failed hook's stdout and stderr in its error


class Hooks:
    """A container's hooks (validated) and the fixed part of the state they are given."""

    __slots__ = ("entries", "state")

    def __init__(self, hooks: dict, state: dict):
        validate(hooks)
        self.entries = hooks
        self.state = state  # ociVersion, id, bundle, annotations

    def has(self, *kinds: str) -> bool:
        return any(self.entries.get(kind) for kind in kinds)

    def before_pivot(self) -> bool:
        """Whether pid 1 must stop between its mounts and pivot_root for hooks."""
        return self.has(*BEFORE_PIVOT)

    def run(self, kind: str, pid: int, status: str, default_env: list[str] | None = None) -> None:
        """Run the `kind` hooks with the state {status, pid}; the first failure raises BerthError.
        `default_env` is the environment of entries without "env" (none: ours, as runc's)."""
        entries = self.entries.get(kind)
        if not entries:
            return
        state = json.dumps({**self.state, "status": status, "pid": pid}).encode()
        for index, hook in enumerate(entries):
            try:
                _run_one(hook, state, default_env)
            except BerthError as err:
                raise BerthError(f"error running {kind} hook #{index}: {err}") from None


def validate(hooks) -> None:
    """Refuse what the spec rules out (a relative path, a timeout <= 0) and hook kinds we do not
    know, before anything of the container exists: a hook is never skipped silently."""
    if not isinstance(hooks, dict):
        raise InvalidArgument("invalid hooks in config.json: must be an object")
    for kind, entries in hooks.items():
        if kind not in KINDS:
            raise InvalidArgument(f"unsupported hook {kind!r} in config.json (known: {', '.join(KINDS)})")
        if not isinstance(entries, list):
            raise InvalidArgument(f"invalid hooks.{kind} in config.json: must be an array")
        for index, hook in enumerate(entries):
            where = f"hooks.{kind}[{index}]"
            if not isinstance(hook, dict) or not isinstance(hook.get("path"), str):
                raise InvalidArgument(f"invalid {where} in config.json: path is required")
            if not hook["path"].startswith("/"):
                raise InvalidArgument(f"invalid {where} in config.json: path {hook['path']!r} must be absolute")
            for key in ("args", "env"):
                value = hook.get(key)
                if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                    raise InvalidArgument(f"invalid {where} in config.json: {key} must be an array of strings")
            timeout = hook.get("timeout")
            if timeout is not None and (type(timeout) is not int or timeout <= 0):
                raise InvalidArgument(f"invalid {where} in config.json: timeout must be greater than zero")


def _run_one(hook: dict, state: bytes, default_env: list[str] | None) -> None:
    path = hook["path"]
    args = hook.get("args") or [path]
    env = hook.get("env")
    if env is None:
        environ = _environ(default_env) if default_env is not None else os.environ
    else:
        environ = _environ(env)
    # memfds, not pipes: nothing to pump while we wait, and a hook (or what it leaves running)
    # that writes a lot cannot block on a full pipe.
    stdin = _memfd("hook-state", state)
    stdout = _memfd("hook-stdout")
    stderr = _memfd("hook-stderr")
    try:
        pid = os.fork()
        if pid == 0:
            _exec(path, args, environ, (stdin, stdout, stderr))
        status = _wait(pid, hook.get("timeout"))
        if status is None:
            raise BerthError(f"hook ran past specified timeout of {hook['timeout']:.1f}s")
        if status != 0:
            raise BerthError(f"{_describe(status)}, stdout: {_output(stdout)}, stderr: {_output(stderr)}")
    finally:
        for fd in (stdin, stdout, stderr):
            os.close(fd)


def _environ(env: list[str]) -> dict:
    return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if data:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _exec(path: str, args: list[str], environ, stdio: tuple[int, int, int]) -> None:
    """In the forked child: the memfds as fds 0-2 and no other fd, default signal dispositions
    (Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec), exec."""
    try:
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        os.closerange(3, 1 << 20)  # like runc's hooks: stdio only, nothing the runtime was given
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execve(path, args, environ)
    except BaseException as err:
        try:
            os.write(2, f"exec {path}: {err.strerror if isinstance(err, OSError) else err}".encode())
        finally:
            os._exit(127)


def _wait(pid: int, timeout: int | None) -> int | None:
    """The hook's exit code (negative: killed by that signal); None if it ran past `timeout`
    seconds, after killing it."""
    if not timeout:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    deadline = time.monotonic() + timeout
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # before Linux 5.3, or hidden by a seccomp filter: poll
        pidfd = None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(left, 0.01))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _describe(code: int) -> str:
    """Go's ProcessState wording, as runc reports a failed hook."""
    if code >= 0:
        return f"exit status {code}"
    return f"signal: {(signal.strsignal(-code) or str(-code)).lower()}"


def _output(fd: int) -> str:
    """What the hook wrote to `fd`: its last characters, on one line."""
    size = os.fstat(fd).st_size
    text = os.pread(fd, _OUTPUT_SHOWN * 4, max(0, size - _OUTPUT_SHOWN * 4)).decode(errors="replace")
    return " ".join(text.split())[-_OUTPUT_SHOWN:]
