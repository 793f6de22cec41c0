"""docker's exec instances (the Engine API's exec): created by one request, started by another,
inspected and resized by others, each served by a process of its own. So an instance lives on
disk, `<run-root>/containers/<id>/execs/<exec id>.json` (written atomically, gone with the
container's run directory when it is removed), and the process that started it records its
pid, its end, and where its terminal is (for a resize from elsewhere)."""

import os

from berth.engine.containers import is_running
from berth.engine.execs import ExecRequest, ExecSession, start_exec
from berth.errors import BerthError, Conflict, InvalidArgument, NotFound, NotImplementedYet, from_kind, start_exit_code
from berth.fs import make_dirs, read_json, write_json

EXECS = "execs"
HEX = frozenset("0123456789abcdef")


class ExecInstance:
    """One exec instance: its config (docker's ExecConfig) and what happened to it."""

    __slots__ = ("path", "data")

    def __init__(self, path: str, data: dict):
        self.path = path
        self.data = data

    @property
    def id(self) -> str:
        return self.data["ID"]

    @property
    def container_id(self) -> str:
        return self.data["ContainerID"]

    def request(self, detach: bool, tty: bool) -> ExecRequest:
        config = self.data["Config"]
        return ExecRequest(config["Cmd"], user=config["User"] or None, env=config["Env"],
                           workdir=config["WorkingDir"] or None, tty=tty, privileged=config["Privileged"],
                           attach_stdin=config["AttachStdin"], detach=detach)

    def save(self, **changes) -> None:
        self.data.update(changes)
        write_json(self.path, self.data, durable=False)  # dies with the run directory anyway

    def inspect(self) -> dict:
        """docker's exec inspect (ExecInspect)."""
        config, data = self.data["Config"], self.data
        return {"ID": data["ID"], "Running": data["Running"], "ExitCode": data["ExitCode"],
                "ProcessConfig": {"tty": config["Tty"], "entrypoint": config["Cmd"][0],
                                  "arguments": config["Cmd"][1:], "privileged": config["Privileged"],
                                  **({"user": config["User"]} if config["User"] else {})},
                "OpenStdin": config["AttachStdin"], "OpenStderr": config["AttachStderr"],
                "OpenStdout": config["AttachStdout"], "CanRemove": False, "ContainerID": data["ContainerID"],
                "DetachKeys": config["DetachKeys"], "Pid": data["Pid"]}


def create(engine, ref: str, config: dict) -> str:
    """A new exec instance in the running container `ref` (docker's ExecConfig keys); its ID."""
    record = engine.get(ref)
    cmd = config.get("Cmd") or []
    if isinstance(cmd, str):
        cmd = [cmd]
    if not cmd or not all(isinstance(arg, str) for arg in cmd):
        raise InvalidArgument("No exec command specified")
    if not is_running(record):
        raise Conflict(f"container {record['Id']} is not running")
    if record["State"]["Paused"]:
        raise Conflict(f"Container {record['Id']} is paused, unpause the container before exec")
    keys = config.get("DetachKeys") or ""
    if keys:
        raise NotImplementedYet("DetachKeys: detaching from an exec session is not supported yet")
    exec_id = os.urandom(32).hex()
    directory = os.path.join(engine.paths.container_run(record["Id"]), EXECS)
    make_dirs(directory)
    size = config.get("ConsoleSize")
    instance = ExecInstance(os.path.join(directory, exec_id + ".json"), {
        "ID": exec_id, "ContainerID": record["Id"], "Running": False, "ExitCode": None, "Pid": 0,
        "StartedBy": 0, "Console": -1,
        "Config": {"Cmd": list(cmd), "Env": [str(e) for e in config.get("Env") or []],
                   "WorkingDir": config.get("WorkingDir") or "", "User": config.get("User") or "",
                   "Privileged": bool(config.get("Privileged")), "Tty": bool(config.get("Tty")),
                   "AttachStdin": bool(config.get("AttachStdin")), "AttachStdout": bool(config.get("AttachStdout")),
                   "AttachStderr": bool(config.get("AttachStderr")), "DetachKeys": keys,
                   "ConsoleSize": console_size(size)}})
    instance.save()
    return exec_id


def load(engine, exec_id: str) -> ExecInstance:
    """The exec instance `exec_id` (its full ID, as docker's lookup), else docker's 404."""
    if len(exec_id) == 64 and set(exec_id) <= HEX:
        containers = os.path.join(engine.paths.run_root, "containers")
        try:
            names = os.listdir(containers)
        except FileNotFoundError:
            names = []
        for container_id in names:
            path = os.path.join(containers, container_id, EXECS, exec_id + ".json")
            try:
                return ExecInstance(path, read_json(path))
            except (FileNotFoundError, NotADirectoryError):
                continue
    raise NotFound(f"No such exec instance: {exec_id}")


def start(engine, instance: ExecInstance, detach: bool, size: tuple[int, int] | None = None) -> ExecSession | None:
    """Start the instance (once only, as docker); the session to stream unless detached.
    A start that fails records docker's exit code (126, 127...) before its error goes on."""
    check_startable(engine, instance)
    config = instance.data["Config"]
    size = size or console_size(config["ConsoleSize"])
    instance.save(StartedBy=os.getpid())
    try:
        if detach:
            return _start_detached(engine, instance, size)
        session = start_exec(engine, instance.container_id, instance.request(False, config["Tty"]), size)
    except Conflict:  # the container stopped or paused meanwhile: nothing ran
        instance.save(StartedBy=0)
        raise
    except BerthError as err:
        instance.save(ExitCode=start_exit_code(err))
        raise
    instance.save(Running=True, Pid=session.pid, Console=session.console_fd)
    return session


def check_startable(engine, instance: ExecInstance) -> None:
    """docker's refusals of a start: an instance started before, a container not running."""
    if instance.data["Running"]:
        raise Conflict(f"Error: Exec command {instance.id} is already running")
    if instance.data["ExitCode"] is not None or instance.data["StartedBy"]:
        raise Conflict(f"Error: Exec command {instance.id} has already run")
    try:
        record = engine.load(instance.container_id)
    except FileNotFoundError:
        raise NotFound(f"No such exec instance: {instance.id}") from None
    if not is_running(record):
        raise Conflict(f"container {instance.container_id} is not running")


def finish(instance: ExecInstance, session: ExecSession, stdin_fd: int, out_fd: int, framed: bool) -> int:
    """Stream an attached instance's session on `out_fd` (in docker's frames if `framed`) until
    it ends, and record its exit code."""
    try:
        code = session.stream(stdin_fd, out_fd, out_fd, framed=framed)
    except BaseException:
        instance.save(Running=False, Console=-1)
        raise
    instance.save(Running=False, ExitCode=code, Console=-1)
    return code


def _start_detached(engine, instance: ExecInstance, size) -> None:
    """A detached exec whose end is still recorded: a child of ours, in a session of its own,
    starts it attached to nothing and waits for it; we return once it runs."""
    from berth import fastjson  # lazy: only a detached exec
    from berth.monitor.lean import read_all  # lazy: likewise

    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(read_end)
            os.setsid()
            _detached(engine, instance, size, write_end)
        except BaseException:  # noqa: BLE001 - its end is recorded below; nothing else may run here
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    data = read_all(read_end)
    os.waitpid(child, 0)  # it has forked the exec's waiter and gone (see _detached)
    message = fastjson.loads(data) if data else {"error": "the exec's waiter ended", "kind": "system"}
    if "error" in message:
        raise from_kind(message.get("kind"), message["error"])


def _detached(engine, instance: ExecInstance, size, notify: int) -> None:
    """In the forked child: fork once more (so the caller can reap us at once and nobody waits
    for the waiter), start the exec with its output discarded, tell `notify`, wait, record."""
    from berth import fastjson  # lazy: only a detached exec

    if os.fork() != 0:
        return
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, notify)  # the client's connection among them: it must not outlive our parent
    os.closerange(notify + 1, 65536)
    null = 0
    try:
        session = start_exec(engine, instance.container_id, instance.request(False, False), size)
    except BerthError as err:
        instance.save(ExitCode=start_exit_code(err))
        os.write(notify, fastjson.dumps({"error": str(err), "kind": err.kind}).encode())
        os._exit(0)
    instance.save(Running=True, Pid=session.pid)
    os.write(notify, fastjson.dumps({"pid": session.pid}).encode())
    os.close(notify)
    try:
        code = session.stream(-1, null, null)
    except BaseException:
        instance.save(Running=False)
        raise
    instance.save(Running=False, ExitCode=code)
    os._exit(0)


def resize(engine, instance: ExecInstance, rows: int, cols: int) -> None:
    """Resize a running instance's terminal, which the process streaming it holds: its
    master is taken from there (pidfd_getfd), as no other process has it."""
    from berth.runtime.console import set_winsize  # lazy: only a resize
    from berth.runtime.syscalls import pidfd_getfd  # lazy: likewise

    data = instance.data
    if not data["Running"]:
        raise Conflict(f"Exec {instance.id} is not running, so it can not be resized.")
    if data["Console"] < 0:
        return  # no terminal: nothing to resize (docker ignores it too)
    try:
        pidfd = os.pidfd_open(data["StartedBy"])
        try:
            master = pidfd_getfd(pidfd, data["Console"])
        finally:
            os.close(pidfd)
    except OSError:
        raise Conflict(f"Exec {instance.id} is not running, so it can not be resized.") from None
    try:
        if os.isatty(master):
            set_winsize(master, rows, cols)
    finally:
        os.close(master)


def console_size(value) -> tuple[int, int] | None:
    """docker's ConsoleSize [height, width]; None for none (or [0, 0])."""
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return int(value[0]), int(value[1])
    return None
