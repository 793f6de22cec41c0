"""runc's `exec` (another process in a running container: its namespaces joined by path, its
cgroup joined, its seccomp filter applied) and `ps` (the processes of its cgroup)."""

import copy
import os
import subprocess
import sys

from berth import fastjson as json
from berth.errors import BerthError, Conflict, InvalidArgument
from berth.runtime.cli_lifecycle import Container, send_fd_to, send_pidfd, write_pid_file

# OCI namespace type -> its file under /proc/<pid>/ns
NS_FILES = {"mount": "mnt", "network": "net", "pid": "pid", "ipc": "ipc", "uts": "uts", "user": "user",
            "cgroup": "cgroup"}
# signals a foreground exec forwards to its process, as runc's signal handler does
FORWARDED = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGCONT")


def process_of(container: Container, flags: dict, args: list[str]) -> dict:
    """runc's getProcess: --process F as it is, or the container's own process with the
    command line and the flags' changes."""
    if flags.get("process"):
        if args:
            raise InvalidArgument("exec: --process and a command line exclude each other")
        try:
            with open(flags["process"], "rb") as f:
                process = json.loads(f.read())
        except ValueError as err:
            raise InvalidArgument(f"{flags['process']}: invalid JSON: {err}") from None
        if not isinstance(process, dict) or not process.get("args"):
            raise InvalidArgument("args must not be empty")
        return process
    if not args:
        raise InvalidArgument('"exec" requires a command to run')
    process = copy.deepcopy(container.state.get("process") or {})
    process["args"] = args
    process["terminal"] = flags.get("tty", False)
    process.pop("consoleSize", None)
    if flags.get("cwd"):
        process["cwd"] = flags["cwd"]
    process["env"] = list(process.get("env") or []) + flags.get("env", [])
    if flags.get("user"):
        process["user"] = _user(flags["user"], process.get("user") or {"uid": 0, "gid": 0})
    if flags.get("additional-gids"):
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        user["additionalGids"] = [_number(gid, "additional-gids") for gid in flags["additional-gids"]]
    if flags.get("cap"):
        caps = process.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            caps[kind] = list(caps.get(kind) or []) + flags["cap"]
    if flags.get("no-new-privs"):
        process["noNewPrivileges"] = True
    if flags.get("apparmor"):
        process["apparmorProfile"] = flags["apparmor"]
    if flags.get("process-label"):
        process["selinuxLabel"] = flags["process-label"]
    return process


def _user(raw: str, user: dict) -> dict:
    """runc 1.1's --user "uid[:gid]": numbers only, as Go's strconv.Atoi reads them (names are
    not looked up: runc reads no /etc/passwd for exec either); without a gid, the process keeps
    the one it had."""
    uid, colon, gid = raw.partition(":")
    user = dict(user)
    if colon:
        user["gid"] = _atoi(gid, "gid")
    user["uid"] = _atoi(uid, "uid")
    return user


def _atoi(raw: str, what: str) -> int:
    digits = raw[1:] if raw[:1] in ("+", "-") else raw
    if not digits or not digits.isascii() or not digits.isdigit():
        raise InvalidArgument(f'parsing {raw} as int for {what} failed: strconv.Atoi: parsing "{raw}": '
                              "invalid syntax")
    return int(raw) & 0xFFFFFFFF  # runc's uint32(...)


def _number(raw: str, flag: str) -> int:
    if not raw.isdigit():
        raise InvalidArgument(f"--{flag}: {raw!r} is not a number")
    return int(raw)


def exec_spec(container: Container, process: dict) -> dict:
    """The spec runtime.container.exec_in starts: the container's namespaces by path, its
    cgroup and seccomp filter."""
    pid = container.pid
    namespaces = [{"type": ns["type"], "path": f"/proc/{pid}/ns/{NS_FILES[ns['type']]}"}
                  for ns in container.state.get("namespaces") or () if ns.get("type") in NS_FILES]
    linux = {"namespaces": namespaces, "cgroupsPath": container.state["cgroupsPath"]}
    if container.state.get("seccomp"):
        linux["seccomp"] = container.state["seccomp"]
    return {"ociVersion": container.state["ociVersion"], "process": process, "linux": linux}


def cmd_exec(options, flags: dict, container_id: str, rest: list[str]) -> int:
    """runc's exec: the process's exit code; any failure "exec failed: ..." and exit 255."""
    from berth.runtime.cli import VerbFailed

    try:
        return _exec(options, flags, container_id, rest)
    except (BerthError, OSError, ValueError) as err:
        raise VerbFailed(f"exec failed: {_reason(err)}", 255) from None


def _reason(err: Exception) -> str:
    if isinstance(err, OSError):
        from berth.runtime.cli import _os_error

        return _os_error(err)
    return str(err)


def _exec(options, flags: dict, container_id: str, rest: list[str]) -> int:
    from berth.runtime.cli_lifecycle import _preserved_fds
    from berth.runtime.container import become_subreaper, exec_in

    container = Container.load(options.root, container_id)
    status = container.status()
    if status == "stopped":
        raise Conflict("cannot exec in a stopped container")
    if status == "paused" and not flags.get("ignore-paused"):
        raise Conflict("cannot exec in a paused container (use --ignore-paused to override)")
    process = process_of(container, flags, rest)
    detach = flags.get("detach", False)
    if process.get("terminal") and not flags.get("console-socket") and detach:
        raise InvalidArgument("cannot allocate tty if runc will detach without setting console socket")
    console = None
    if process.get("terminal") and not flags.get("console-socket"):
        from berth.runtime.cli_tty import host_console

        console = host_console()  # runc's order: no host terminal, nothing is started
    preserve = _preserved_fds(flags.get("preserve-fds", 0))
    if not detach:
        become_subreaper()  # the process is our grandchild: we reap it for its exit code
    launched = exec_in(exec_spec(container, process), seccomp_cache=os.path.join(options.root, "seccomp"),
                       preserve_fds=preserve, session_keyring=container.state.get("sessionKeyring"))
    console_fd = None
    if launched.console_fd is not None and flags.get("console-socket"):
        send_fd_to(flags["console-socket"], launched.console_fd)
    elif launched.console_fd is not None:
        console_fd = launched.console_fd  # runc's own pty proxy, in the foreground
    if flags.get("pidfd-socket"):
        send_pidfd(flags["pidfd-socket"], launched.pid)
    if flags.get("pid-file"):
        write_pid_file(flags["pid-file"], launched.pid)
    if detach:
        return 0
    return _wait_forwarding(launched.pid, console_fd, console)


def _wait_forwarding(pid: int, console_fd: int | None = None, console: int | None = None) -> int:
    import signal

    from berth.runtime.reap import wait_exit_code

    def forward(signum, _frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for name in FORWARDED:
        if name == "SIGWINCH" and console_fd is not None:
            continue  # the proxy resizes the pty instead
        signal.signal(getattr(signal, name), forward)
    if console_fd is not None:
        from berth.runtime.cli_tty import proxy

        return proxy(console_fd, pid, console)
    return wait_exit_code(pid)


def cmd_ps(options, flags: dict, container_id: str, rest: list[str]) -> int:
    container = Container.load(options.root, container_id)
    pids = sorted(container.cgroup().members())
    form = flags.get("format", "table")
    if form == "json":
        if rest:
            raise InvalidArgument("ps: ps options are not supported with --format json")
        print(json.dumps(pids))
        return 0
    if form != "table":
        raise InvalidArgument(f"invalid format option: {form}")
    output = subprocess.run(["ps", *(rest or ["-ef"])], capture_output=True, text=True)
    if output.returncode != 0:
        raise InvalidArgument(f"ps: {output.stderr.strip() or 'failed'}")
    lines = output.stdout.splitlines()
    if not lines:
        return 0
    try:
        column = lines[0].split().index("PID")
    except ValueError:
        raise InvalidArgument("couldn't find PID field in ps output") from None
    wanted = set(pids)
    shown = [lines[0]] + [line for line in lines[1:]
                          if len(line.split()) > column and line.split()[column].isdigit()
                          and int(line.split()[column]) in wanted]
    sys.stdout.write("".join(line + "\n" for line in shown))
    return 0
