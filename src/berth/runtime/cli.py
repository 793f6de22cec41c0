"""`berth-runtime`: the same runtime behind runc's command line, over an OCI bundle.

    berth-runtime [--root DIR] create [-b BUNDLE] [--console-socket S] [--pid-file F] ID
    berth-runtime start ID | state ID | kill ID [SIGNAL] | delete [-f] ID
    berth-runtime run [-b BUNDLE] [-d] [--pid-file F] ID

State lives in <root>/<id>/state.json (default root /run/berth-runtime)."""

import os
import signal
import sys
import time

from berth import __version__
from berth import fastjson as json
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.fs import OutputFile, read_json, remove_tree, set_process_umask, write_json
from berth.signals import parse_signal

DEFAULT_ROOT = "/run/berth-runtime"


def _state_dir(root: str, container_id: str) -> str:
    if not container_id or "/" in container_id or container_id.startswith("."):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return os.path.join(root, container_id)


def _load(root: str, container_id: str) -> dict:
    try:
        return read_json(os.path.join(_state_dir(root, container_id), "state.json"))
    except FileNotFoundError:
        raise NotFound(f"container does not exist: {container_id}") from None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def status_of(state: dict, directory: str) -> str:
    if not state.get("pid") or not _alive(state["pid"]):
        return "stopped"
    if os.path.exists(os.path.join(directory, "exec.fifo")):
        return "created"
    return "running"


def create(root: str, container_id: str, bundle: str, console_socket: str | None, pid_file: str | None) -> dict:
    from berth.runtime.container import start  # lazy: only create and run load the runtime proper

    directory = _state_dir(root, container_id)
    bundle = os.path.abspath(bundle)
    try:
        spec = read_json(os.path.join(bundle, "config.json"))
    except FileNotFoundError:
        raise InvalidArgument(f"open {bundle}/config.json: no such file or directory") from None
    except ValueError as err:
        raise InvalidArgument(f"{bundle}/config.json: invalid JSON: {err}") from None
    _validate_bundle(spec)
    if (spec.get("process") or {}).get("terminal") and not console_socket:  # before anything is made
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
    hooks = _hooks_of(spec.get("hooks"), spec, container_id, bundle)
    os.makedirs(root, exist_ok=True)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id exists: {container_id}") from None
    try:
        rootfs = spec["root"]["path"]
        rootfs = rootfs if os.path.isabs(rootfs) else os.path.join(bundle, rootfs)
        linux = spec.setdefault("linux", {})
        linux.setdefault("cgroupsPath", "/berth-runtime/" + container_id)
        fifo = os.path.join(directory, "exec.fifo")
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # past our umask: pid 1 opens it as the container's user, maybe without DAC_OVERRIDE
        launched = start(spec, rootfs, None, (0, 1, 2), exec_fifo=fifo,
                         seccomp_cache=os.path.join(root, "seccomp"), hooks=hooks,
                         state={"id": container_id, "bundle": bundle, "annotations": spec.get("annotations") or {}})
        if launched.console_fd is not None:
            _send_console(console_socket, launched.console_fd)
        state = {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": container_id, "pid": launched.pid,
                 "bundle": bundle, "rootfs": rootfs, "cgroupsPath": linux["cgroupsPath"],
                 "annotations": spec.get("annotations") or {}}
        if hooks is not None:  # poststart and poststop run from here, as config.json was at create
            state["hooks"] = spec["hooks"]
        write_json(os.path.join(directory, "state.json"), state)
        if pid_file:  # runc's way: a temp file beside it, renamed (a planted symlink is replaced, not followed)
            with OutputFile(pid_file) as fd:
                os.write(fd, str(launched.pid).encode())
        return state
    except BaseException:
        remove_tree(directory)
        if hooks is not None:  # the spec's lifecycle: a failed create is destroyed, then poststop
            _warn_on_failure(hooks, "poststop", 0, "stopped")
        raise


def _hooks_of(entries: dict | None, spec: dict, container_id: str, bundle: str):
    """runtime.hooks.Hooks for config.json's (or state.json's) hooks, None without any."""
    if entries is None:
        return None
    from berth.runtime.hooks import Hooks  # only bundles with hooks import it

    return Hooks(entries, {"ociVersion": spec.get("ociVersion", "1.0.2"), "id": container_id, "bundle": bundle,
                           "annotations": spec.get("annotations") or {}})


def _warn_on_failure(hooks, kind: str, pid: int, status: str) -> None:
    """poststart and poststop: a failure is a warning, the operation goes on (runtime-spec 1.0)."""
    try:
        hooks.run(kind, pid, status)
    except BerthError as err:
        print(f"berth-runtime: warning: {err}", file=sys.stderr)


def _validate_bundle(spec: dict) -> None:
    """runc's checks before anything is made: sysctls only in the container's own namespaces."""
    from berth.runtime.validate import check_bundle  # lazy: only create and run read a bundle

    check_bundle(spec)


def _send_console(console_socket: str | None, master: int) -> None:
    import _socket  # lazy: only --console-socket

    from berth.runtime.console import send_fd  # lazy: only --console-socket

    if not console_socket:
        os.close(master)
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(console_socket)
        send_fd(sock, master)
    finally:
        sock.close()
        os.close(master)


def start_created(root: str, container_id: str) -> None:
    directory = _state_dir(root, container_id)
    state = _load(root, container_id)
    if status_of(state, directory) != "created":
        raise Conflict("cannot start a container that has stopped" if not _alive(state["pid"])
                       else "cannot start an already running container")
    fifo = os.path.join(directory, "exec.fifo")
    fd = os.open(fifo, os.O_RDONLY | os.O_CLOEXEC)
    try:
        started = os.read(fd, 4096)  # "0", or "1" and why a startContainer hook failed
    finally:
        os.close(fd)
        os.unlink(fifo)
    if started[:1] == b"1":
        raise BerthError(started[1:].decode(errors="replace"))
    if not started:
        raise BerthError("container init exited before it could start its process")
    hooks = _hooks_of(state.get("hooks"), state, container_id, state["bundle"])
    if hooks is not None:
        _warn_on_failure(hooks, "poststart", state["pid"], "running")


def state_json(root: str, container_id: str) -> dict:
    directory = _state_dir(root, container_id)
    state = _load(root, container_id)
    status = status_of(state, directory)
    return {"ociVersion": state["ociVersion"], "id": container_id, "status": status,
            "pid": state["pid"] if status != "stopped" else 0, "bundle": state["bundle"],
            "rootfs": state["rootfs"], "annotations": state.get("annotations") or {}}


def kill(root: str, container_id: str, sig: int) -> None:
    directory = _state_dir(root, container_id)
    state = _load(root, container_id)
    if status_of(state, directory) == "stopped":
        raise Conflict("container not running")
    os.kill(state["pid"], sig)


def delete(root: str, container_id: str, force: bool) -> None:
    from berth.runtime.cgroups import open_cgroup  # lazy: only delete touches cgroups

    directory = _state_dir(root, container_id)
    state = _load(root, container_id)
    status = status_of(state, directory)
    if status == "running" and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
    cgroup = open_cgroup(state["cgroupsPath"])
    if status != "stopped":
        os.kill(state["pid"], signal.SIGKILL)
    if cgroup.exists():
        for pid in cgroup.members():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while cgroup.members() and time.monotonic() < deadline:
            time.sleep(0.005)
        cgroup.destroy()
    remove_tree(directory)
    hooks = _hooks_of(state.get("hooks"), state, container_id, state["bundle"])
    if hooks is not None:
        _warn_on_failure(hooks, "poststop", 0, "stopped")


def run(root: str, container_id: str, bundle: str, detach: bool, console_socket, pid_file) -> int:
    from berth.runtime.container import become_subreaper  # lazy: only run, as create
    from berth.runtime.reap import wait_exit_code  # lazy: only run waits

    if not detach:
        become_subreaper()
    state = create(root, container_id, bundle, console_socket, pid_file)
    try:
        start_created(root, container_id)
    except BaseException:
        delete(root, container_id, force=True)
        raise
    if detach:
        return 0
    code = wait_exit_code(state["pid"])
    delete(root, container_id, force=True)
    return code


def _take(args: list[str], names: tuple[str, ...], has_value: bool = True):
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and has_value and i + 1 < len(args):
                value = args[i + 1]
                del args[i:i + 2]
                return value
            if arg == name and not has_value:
                del args[i]
                return True
            if has_value and arg.startswith(name + "="):
                del args[i]
                return arg.partition("=")[2]
    return None


def main(argv: list[str]) -> int:
    args = list(argv)
    root = DEFAULT_ROOT
    while args and args[0].startswith("-"):
        flag = args.pop(0)
        name, eq, value = flag.partition("=")
        if name in ("--root", "--log", "--log-format", "--criu", "--rootless"):
            value = value if eq else (args.pop(0) if args else "")
            if name == "--root":
                root = value
        elif name in ("--debug", "--systemd-cgroup"):
            continue
        elif name in ("-v", "--version"):
            print(f"berth-runtime version {__version__}\nspec: 1.0.2")
            return 0
        else:
            raise InvalidArgument(f"flag provided but not defined: {flag}")
    if not args:
        print(__doc__)
        return 0
    command = args.pop(0)
    bundle = _take(args, ("--bundle", "-b")) or "."
    console_socket = _take(args, ("--console-socket",))
    pid_file = _take(args, ("--pid-file",))
    detach = bool(_take(args, ("--detach", "-d"), has_value=False))
    force = bool(_take(args, ("--force", "-f"), has_value=False))
    if not args:
        raise InvalidArgument(f'"{command}" requires a container id')
    container_id = args[0]
    if command == "create":
        create(root, container_id, bundle, console_socket, pid_file)
    elif command == "start":
        start_created(root, container_id)
    elif command == "state":
        print(json.dumps(state_json(root, container_id), indent=2))
    elif command == "kill":
        kill(root, container_id, parse_signal(args[1] if len(args) > 1 else "SIGTERM"))
    elif command == "delete":
        delete(root, container_id, force)
    elif command == "run":
        return run(root, container_id, bundle, detach, console_socket, pid_file)
    else:
        raise InvalidArgument(f"unknown command {command!r}")
    return 0


def entry() -> None:
    set_process_umask()
    try:
        code = main(sys.argv[1:])
    except BerthError as err:
        print(f"berth-runtime: {err}", file=sys.stderr)
        code = 1
    except OSError as err:
        print(f"berth-runtime: {err}", file=sys.stderr)
        code = 1
    raise SystemExit(code)
