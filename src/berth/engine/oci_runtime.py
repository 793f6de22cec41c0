"""Containers run by an external OCI runtime (`--runtime runc`, a name of daemon.json's
"runtimes"), in place of the in-process one: the same OCI bundle, handed to the runtime's
`create`, `start` and `delete` as dockerd's shim does. The overlay rootfs is mounted in a
private mount namespace that only the runtime (and the container it makes) sees, so nothing
stays mounted on the host; the container's pid 1 is reparented to us (a subreaper) when the
runtime's create exits, so the supervisor waits for it as for its own. Loaded only then."""

import _socket
import os
import subprocess

from berth import fastjson as json
from berth.errors import BerthError, InvalidArgument
from berth.fs import remove_tree
from berth.runtime import syscalls as sc
from berth.runtime.cgroups import open_cgroup
from berth.runtime.container import Launched

CONSOLE_SOCKET = "console.sock"


class ConsoleSocket:
    """runc's --console-socket: the runtime connects and sends the pty master it made for the
    container (SCM_RIGHTS). Bound through /proc/self/fd: the bundle's path may be too long."""

    def __init__(self, bundle: str):
        dir_fd = os.open(bundle, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(f"/proc/self/fd/{dir_fd}/{CONSOLE_SOCKET}")
            self.sock.listen(1)
        finally:
            os.close(dir_fd)

    def receive(self) -> int:
        from berth.runtime.console import recv_fd  # lazy: only -t

        self.sock.settimeout(5)  # the runtime connected during its create, which has ended
        fd, _ = self.sock._accept()  # _socket's accept: the connection's fd
        conn = _socket.socket(fileno=fd)
        try:
            return recv_fd(conn)
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


class ExternalRuntime:
    """One runtime of daemon.json ("path", "runtimeArgs"), its state under our run-root."""

    __slots__ = ("name", "path", "args", "state_root")

    def __init__(self, name: str, config: dict, state_root: str):
        self.name = name
        self.path = config.get("path") or name
        self.args = list(config.get("runtimeArgs") or ())
        self.state_root = state_root

    def command(self, *args: str) -> list[str]:
        return [self.path, *self.args, "--root", self.state_root, *args]

    def start(self, container_id: str, bundle: str, spec: dict, overlay: str, stdio, on_created=None) -> Launched:
        os.makedirs(bundle, 0o700, exist_ok=True)
        with open(os.path.join(bundle, "config.json"), "w") as f:
            f.write(json.dumps(spec))
        self.delete(container_id)  # what a supervisor killed before its delete left in the state dir
        pid_file = os.path.join(bundle, "init.pid")
        log = os.path.join(bundle, "runtime.log")
        for path in (pid_file, log, os.path.join(bundle, CONSOLE_SOCKET)):
            if os.path.exists(path):
                os.unlink(path)
        console = ConsoleSocket(bundle) if (spec.get("process") or {}).get("terminal") else None
        try:
            self._create(container_id, bundle, spec["root"]["path"], overlay, stdio, pid_file, log, console)
            console_fd = console.receive() if console is not None else None
        finally:
            if console is not None:
                console.close()
        with open(pid_file) as f:
            pid = int(f.read())
        try:
            if on_created is not None:
                on_created(pid)
            self._run("start", container_id, log=log)
        except BaseException:
            self.delete(container_id)
            raise
        return Launched(pid, open_cgroup(spec["linux"]["cgroupsPath"]), console_fd)

    def _create(self, container_id: str, bundle: str, rootfs: str, overlay: str, stdio, pid_file: str,
                log: str, console) -> None:
        argv = self.command("--log", log, "create", "--bundle", bundle, "--pid-file", pid_file, container_id)
        if console is not None:  # relative to the bundle, its cwd: a socket path is at most 107 bytes
            argv[-1:-1] = ["--console-socket", CONSOLE_SOCKET]
        child = os.fork()
        if child == 0:  # pragma: no cover - the child execs the runtime
            try:
                for target, fd in enumerate(stdio):
                    os.dup2(fd, target)
                os.chdir(bundle)
                sc.unshare(sc.CLONE_NEWNS)
                sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
                sc.mount("overlay", rootfs, "overlay", 0, overlay)
                os.execvp(self.path, argv)
            finally:
                os._exit(127)
        _, status = os.waitpid(child, 0)
        if status != 0:
            raise BerthError(f"{self.name} create failed: {_last_error(log)}")

    def _run(self, verb: str, container_id: str, log: str) -> None:
        result = subprocess.run(self.command("--log", log, verb, container_id), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise BerthError(f"{self.name} {verb} failed: {result.stderr.strip() or _last_error(log)}")

    def delete(self, container_id: str) -> None:
        """`delete --force`: the runtime's state of the container gone (its cgroup is ours to remove)."""
        subprocess.run(self.command("delete", "--force", container_id), stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _last_error(log: str) -> str:
    """The runtime's last message (runc's --log holds JSON lines {"level","msg"})."""
    try:
        with open(log) as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    except OSError:
        return "no message"
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            return line
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
            return str(entry.get("msg"))
    return lines[-1] if lines else "no message"


def bundle_dir(engine, container_id: str) -> str:
    return os.path.join(engine.paths.container_run(container_id), "bundle")


def finished(engine, container_id: str) -> None:
    """After the container ended (engine.finish): the runtime's state of it deleted, its bundle removed."""
    try:
        record = engine.load(container_id)
        runtime = runtime_for(engine, record)
    except (FileNotFoundError, BerthError):
        runtime = None
    if runtime is not None:
        runtime.delete(container_id)
    remove_tree(bundle_dir(engine, container_id))


def runtime_for(engine, record: dict) -> ExternalRuntime | None:
    """The external runtime the container names (HostConfig.Runtime), None for the in-process one."""
    name = record["HostConfig"].get("Runtime") or "berth"
    if name == "berth":
        return None
    runtimes = engine.settings.runtimes
    if name not in runtimes:
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    return ExternalRuntime(name, runtimes[name], os.path.join(engine.paths.run_root, "runtimes", name))
