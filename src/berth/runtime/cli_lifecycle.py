"""runc's lifecycle verbs over <root>/<id>/state.json: create, start, run, state, kill, delete,
list; and the container's status (created -> running -> paused -> stopped) read from the
kernel, as runc's libcontainer derives it, never stored."""

import os
import sys
import time

from berth import fastjson as json
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound
from berth.runtime.cli_start import (  # noqa: F401 (start: cmd_run's, and the verb's home)
    EXEC_FIFO,
    STATE_FILE,
    hooks_of,
    init_alive,
    load_state,
    proc_stat,
    start,
    status_of,
    warn_on_failure,
)

SIGKILL = 9  # numbers, not the signal module: it imports enum (~10 ms) on every verb's path
SYSTEMD_MISSING = "systemd not running on this host, cannot use systemd cgroups manager"  # runc 1.1


class Container:
    """One container's state directory and record, and the status the kernel says it has."""

    __slots__ = ("id", "directory", "state", "console_fd")

    def __init__(self, root: str, container_id: str, state: dict):
        self.console_fd = None  # the pty master `run -t` keeps, without --console-socket
        self.id = container_id
        self.directory = os.path.join(root, container_id)
        self.state = state

    @classmethod
    def load(cls, root: str, container_id: str) -> "Container":
        return cls(root, container_id, load_state(root, container_id))

    @property
    def pid(self) -> int:
        return self.state.get("pid") or 0

    def init_alive(self) -> bool:
        """The init process exists, is not a zombie and is the one we started (same start
        time: a reused pid is not ours)."""
        return init_alive(self.state)

    def cgroup(self):
        from berth.runtime.cgroups import open_cgroup

        return open_cgroup(self.state["cgroupsPath"])

    def status(self) -> str:
        return status_of(self.directory, self.state)

    def oci_state(self) -> dict:
        """runc's `state` JSON (runtime-spec state plus runc's created and owner)."""
        status = self.status()
        state = {"ociVersion": self.state["ociVersion"], "id": self.id, "pid": self.pid if status != "stopped" else 0,
                 "status": status, "bundle": self.state["bundle"], "rootfs": self.state["rootfs"],
                 "created": self.state.get("created", ""), "owner": ""}
        if self.state.get("annotations"):
            state["annotations"] = self.state["annotations"]
        return state

    def require(self, *statuses: str, action: str) -> str:
        status = self.status()
        if status not in statuses:
            raise Conflict(f"cannot {action} a {status} container" if status != "stopped"
                           else "container not running")
        return status


def read_config(bundle: str) -> dict:
    """The bundle's config.json, checked as runc checks it before anything is made."""
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "rb") as f:
            spec = json.loads(f.read())
    except FileNotFoundError:
        raise InvalidArgument(f"JSON specification file {path} not found") from None
    except ValueError as err:
        raise InvalidArgument(f"{path}: invalid JSON: {err}") from None
    from berth.runtime.validate import check_bundle  # runc's checks: version, process, namespaces...

    check_bundle(spec)
    if not isinstance(spec.get("root"), dict) or not spec["root"].get("path"):
        raise InvalidArgument("root must be specified")
    return spec


def systemd_cgroups_path(path: str | None, container_id: str) -> str:
    """--systemd-cgroup: runc's "slice:prefix:name" -> where systemd puts that scope in the
    cgroupfs tree ("a-b.slice" nests under "a.slice"). Only where systemd runs."""
    if not os.path.isdir("/run/systemd/system"):
        raise BerthError(SYSTEMD_MISSING)
    if (path or "").count(":") == 2:
        slice_name, prefix, name = path.split(":")
    else:
        slice_name, prefix, name = "", "berth-runtime", container_id
    slice_name = slice_name or "system.slice"
    parts = slice_name.removesuffix(".slice").split("-")
    nested = "/".join("-".join(parts[:i + 1]) + ".slice" for i in range(len(parts)))
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    return f"/{nested}/{unit}"


def create(options, container_id: str, bundle: str, flags: dict, keep_console: bool = False) -> Container:
    """runc's create; with `keep_console` (a foreground `run`) a terminal's pty master goes to the
    returned container's console_fd instead of --console-socket."""
    from berth.fs import remove_tree, write_json  # lazy: delete and start do without berth.fs
    from berth.runtime.container import start  # lazy: only create and run load the runtime proper

    root = options.root
    bundle = os.path.abspath(bundle)
    spec = read_config(bundle)
    linux = spec.setdefault("linux", {})
    if options.systemd_cgroup:
        linux["cgroupsPath"] = systemd_cgroups_path(linux.get("cgroupsPath"), container_id)
    else:
        linux.setdefault("cgroupsPath", "/berth-runtime/" + container_id)
    if (spec.get("process") or {}).get("terminal") and not flags.get("console-socket") and not keep_console:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
    hooks = hooks_of(spec.get("hooks"), spec, container_id, bundle)
    preserve = _preserved_fds(flags.get("preserve-fds", 0))
    os.makedirs(root, 0o711, exist_ok=True)
    directory = os.path.join(root, container_id)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id exists: {container_id}") from None
    try:
        rootfs = spec["root"]["path"]
        rootfs = rootfs if os.path.isabs(rootfs) else os.path.join(bundle, rootfs)
        fifo = os.path.join(directory, EXEC_FIFO)
        os.mkfifo(fifo, 0o622)
        os.chmod(fifo, 0o622)  # past our umask: pid 1 opens it as the container's user, maybe without DAC_OVERRIDE
        keyring = None if flags.get("no-new-keyring") else "_ses." + container_id  # runc's name
        launched = start(spec, rootfs, None, (0, 1, 2), exec_fifo=fifo,
                         seccomp_cache=os.path.join(root, "seccomp"), hooks=hooks, preserve_fds=preserve,
                         state={"id": container_id, "bundle": bundle, "annotations": spec.get("annotations") or {}},
                         session_keyring=keyring, no_pivot=flags.get("no-pivot", False))
        console_fd = None
        try:
            if launched.console_fd is not None and flags.get("console-socket"):
                send_fd_to(flags["console-socket"], launched.console_fd)
            elif launched.console_fd is not None:
                console_fd = launched.console_fd
            if flags.get("pidfd-socket"):
                send_pidfd(flags["pidfd-socket"], launched.pid)
            stat = proc_stat(launched.pid)
            state = {"ociVersion": spec["ociVersion"], "id": container_id, "pid": launched.pid,
                     "start_time": stat[19] if stat else None, "bundle": bundle, "rootfs": rootfs,
                     "cgroupsPath": linux["cgroupsPath"], "annotations": spec.get("annotations") or {},
                     "created": rfc3339(time.time_ns()),
                     # what `exec` needs of the config: it may change or go once we run
                     "process": spec["process"], "namespaces": linux.get("namespaces") or [],
                     "seccomp": linux.get("seccomp"), "sessionKeyring": keyring}
            if hooks is not None:  # poststart and poststop run from here, as config.json was at create
                state["hooks"] = spec["hooks"]
            write_json(os.path.join(directory, STATE_FILE), state, durable=False)
            if flags.get("pid-file"):
                write_pid_file(flags["pid-file"], launched.pid)
        except BaseException:
            if console_fd is not None:
                os.close(console_fd)
            _destroy(launched.pid, launched.cgroup)
            raise
        container = Container(root, container_id, state)
        container.console_fd = console_fd
        return container
    except BaseException:
        remove_tree(directory)
        if hooks is not None:  # the spec's lifecycle: a failed create is destroyed, then poststop
            warn_on_failure(hooks, "poststop", 0, "stopped")
        raise


def _preserved_fds(count: int) -> int:
    """--preserve-fds N: fds 3..3+N-1 go into the container as they are (runc's LISTEN_FDS way)."""
    if count < 0:
        raise InvalidArgument("--preserve-fds must be a positive number")
    for fd in range(3, 3 + count):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            raise InvalidArgument(f"--preserve-fds: fd {fd} is not open") from None
    return count


def write_pid_file(path: str, pid: int) -> None:
    # runc's way: a temp file beside it, renamed (a planted symlink is replaced, not followed)
    from berth.fs import OutputFile

    with OutputFile(path) as fd:
        os.write(fd, str(pid).encode())


def send_fd_to(socket_path: str, fd: int) -> None:
    """Send `fd` (then close ours) as the one SCM_RIGHTS fd on the unix socket at `socket_path`:
    the pty master on --console-socket, a pidfd on --pidfd-socket."""
    import _socket  # lazy: only --console-socket and --pidfd-socket

    from berth.runtime.console import send_fd

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(socket_path)
        send_fd(sock, fd)
    finally:
        sock.close()
        os.close(fd)


def send_pidfd(socket_path: str, pid: int) -> None:
    send_fd_to(socket_path, os.pidfd_open(pid))


def _destroy(pid: int, cgroup) -> None:
    """Kill what a failed create started and remove its cgroup."""
    try:
        os.kill(pid, SIGKILL)
    except ProcessLookupError:
        pass
    _empty_and_remove(cgroup)


def _empty_and_remove(cgroup) -> None:
    if not cgroup.exists():
        return
    cgroup.thaw()
    deadline = time.monotonic() + 5
    while True:
        members = cgroup.members()
        if not members or time.monotonic() > deadline:
            break
        for pid in members:
            try:
                os.kill(pid, SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    cgroup.destroy()


def rfc3339(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC, as runc's created field."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
    fraction = f"{ns % 1_000_000_000:09d}".rstrip("0")
    return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"


def kill(root: str, container_id: str, sig: int, all_processes: bool) -> None:
    container = Container.load(root, container_id)
    status = container.status()
    if all_processes:  # runc: every process of the cgroup, frozen meanwhile so none forks away
        cgroup = container.cgroup()
        cgroup.freeze()
        try:
            for pid in cgroup.members():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        finally:
            if status != "paused" or sig == SIGKILL:
                cgroup.thaw()
        return
    if status == "stopped":
        raise Conflict("container not running")
    os.kill(container.pid, sig)
    if status == "paused" and sig == SIGKILL:  # a frozen task dies only once thawed
        container.cgroup().thaw()


def delete(root: str, container_id: str, force: bool) -> None:
    try:
        container = Container.load(root, container_id)
    except NotFound:
        # runc: an aborted create can leave the directory without state.json; it goes, and
        # --force makes a missing container no error
        _remove_state_dir(os.path.join(root, container_id))
        if force:
            return
        raise
    status = container.status()
    if status in ("running", "paused") and not force:
        raise Conflict(f"cannot delete container {container_id} that is not stopped: {status}")
    if status != "stopped":
        try:
            os.kill(container.pid, SIGKILL)
        except ProcessLookupError:
            pass
    _empty_and_remove(container.cgroup())
    _remove_state_dir(container.directory)
    hooks = hooks_of(container.state.get("hooks"), container.state, container_id, container.state["bundle"])
    if hooks is not None:
        warn_on_failure(hooks, "poststop", 0, "stopped")


def _remove_state_dir(directory: str) -> None:
    """A container's state directory: what berth-runtime puts there (state.json, exec.fifo)
    unlinked through the directory's fd, then the directory; anything else there (or not a plain
    directory), with berth.fs's remove_tree."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError:
        fd = None
    if fd is not None:
        try:
            for name in (STATE_FILE, EXEC_FIFO):
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
        finally:
            os.close(fd)
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            pass
    from berth.fs import remove_tree  # lazy: only a directory with more in it

    remove_tree(directory)


def containers(root: str) -> list[Container]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        try:
            found.append(Container.load(root, name))
        except (NotFound, BerthError, NotADirectoryError):
            continue  # not a container (the seccomp cache), or one half made
    return found


# The verbs as runtime/cli dispatches them: (options, flags, container id, other args) -> exit code.


def cmd_create(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _no_more(rest)
    create(options, container_id, flags.get("bundle") or ".", flags)
    return 0


def cmd_run(options, flags: dict, container_id: str, rest: list[str]) -> int:
    from berth.runtime.container import become_subreaper  # lazy: only run, as create
    from berth.runtime.reap import wait_exit_code  # lazy: only run waits

    _no_more(rest)
    detach = flags.get("detach", False)
    if not detach and not flags.get("no-subreaper"):
        become_subreaper()
    console = None
    if not detach and not flags.get("console-socket") and _wants_terminal(flags.get("bundle") or "."):
        from berth.runtime.cli_tty import host_console

        console = host_console()  # runc's order: no host terminal, nothing is made
    container = create(options, container_id, flags.get("bundle") or ".", flags, keep_console=console is not None)
    try:
        start(options.root, container_id)
    except BaseException:
        if container.console_fd is not None:
            os.close(container.console_fd)
        delete(options.root, container_id, force=True)
        raise
    if detach:
        return 0
    if container.console_fd is not None:  # runc's own pty proxy: no --console-socket
        from berth.runtime.cli_tty import proxy

        code = proxy(container.console_fd, container.pid, console)
    else:
        code = wait_exit_code(container.pid)
    if not flags.get("keep"):
        delete(options.root, container_id, force=True)
    return code


def _wants_terminal(bundle: str) -> bool:
    try:
        return bool((read_config(os.path.abspath(bundle)).get("process") or {}).get("terminal"))
    except BerthError:
        return False  # create says what is wrong with the bundle


def cmd_state(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _no_more(rest)
    print(json.dumps(Container.load(options.root, container_id).oci_state(), indent=2))
    return 0


def cmd_kill(options, flags: dict, container_id: str, rest: list[str]) -> int:
    if len(rest) > 1:
        raise InvalidArgument(f"kill: too many arguments: {' '.join(rest)}")
    from berth.signals import parse_signal

    raw = rest[0] if rest else "SIGTERM"
    try:
        sig = parse_signal(raw)
    except InvalidArgument:
        raise InvalidArgument(f"unknown signal {raw!r}") from None
    kill(options.root, container_id, sig, flags.get("all", False))
    return 0


def cmd_delete(options, flags: dict, container_id: str, rest: list[str]) -> int:
    _no_more(rest)
    delete(options.root, container_id, flags.get("force", False))
    return 0


def cmd_list(options, flags: dict, container_id: None, rest: list[str]) -> int:
    _no_more(rest)
    found = [container.oci_state() for container in containers(options.root)]
    if flags.get("quiet"):
        sys.stdout.write("".join(state["id"] + "\n" for state in found))
        return 0
    if flags.get("format", "table") == "json":
        for state in found:
            state["owner"] = "root"
        print(json.dumps(found) if found else "null")
        return 0
    if flags.get("format", "table") != "table":
        raise InvalidArgument(f"invalid format option: {flags['format']}")
    from berth.gotemplate.tabwriter import tabwrite  # lazy: only the table

    lines = ["ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER"]
    lines += [f"{s['id']}\t{s['pid']}\t{s['status']}\t{s['bundle']}\t{s['created']}\troot" for s in found]
    sys.stdout.write(tabwrite("\n".join(lines) + "\n", minwidth=12, padding=3))
    return 0


def _no_more(rest: list[str]) -> None:
    if rest:
        raise InvalidArgument(f"unexpected arguments: {' '.join(rest)}")
