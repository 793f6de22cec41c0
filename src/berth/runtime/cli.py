"""`berth-runtime`: the runtime behind runc's command line, as containerd's runc shim (go-runc),
dockerd, podman's conmon and people call it. This module only parses, logs and dispatches; the
verbs live in runtime/cli_lifecycle (create/run/state/kill/delete/list), cli_start (start, kept
free of `os`), cli_exec (exec, ps), cli_cgroup (pause/resume/update/events), cli_info (features,
checkpoint/restore) and cli_tty (the foreground pty proxy of run -t / exec -t).

    berth-runtime [global flags] <command> [command flags] <container-id> [args...]

Global flags: --root DIR (default /run/berth-runtime), --log FILE, --log-format text|json,
--debug, --systemd-cgroup, --criu PATH, --rootless, --version. State lives in <root>/<id>/."""

import sys

from berth.errors import BerthError, InvalidArgument

DEFAULT_ROOT = "/run/berth-runtime"
SPEC_VERSION = "1.0.2"  # the runtime-spec version `--version` and `features` name as current

# runc's commands and their flags (urfave/cli, Go's flag package): kind is "bool", "str",
# "int" or "list" (repeatable); aliases map to the first name.
_CREATE = {"bundle": "str", "console-socket": "str", "pidfd-socket": "str", "pid-file": "str",
           "no-pivot": "bool", "no-new-keyring": "bool", "preserve-fds": "int"}
_UPDATE = {"resources": "str", "blkio-weight": "int", "cpu-period": "int", "cpu-quota": "int",
           "cpu-share": "int", "cpu-rt-period": "int", "cpu-rt-runtime": "int",
           "cpuset-cpus": "str", "cpuset-mems": "str", "kernel-memory": "str", "kernel-memory-tcp": "str",
           "memory": "str", "memory-reservation": "str", "memory-swap": "str", "pids-limit": "int",
           "l3-cache-schema": "str", "mem-bw-schema": "str"}
_CHECKPOINT = {"image-path": "str", "work-path": "str", "parent-path": "str", "leave-running": "bool",
               "tcp-established": "bool", "ext-unix-sk": "bool", "shell-job": "bool", "lazy-pages": "bool",
               "status-fd": "int", "page-server": "str", "file-locks": "bool", "pre-dump": "bool",
               "manage-cgroups-mode": "str", "empty-ns": "list", "auto-dedup": "bool"}
COMMANDS = {
    "create": _CREATE,
    "run": {**_CREATE, "detach": "bool", "keep": "bool", "no-subreaper": "bool"},
    "start": {},
    "state": {},
    "kill": {"all": "bool"},
    "delete": {"force": "bool"},
    "exec": {"process": "str", "detach": "bool", "pid-file": "str", "console-socket": "str",
             "pidfd-socket": "str", "tty": "bool", "cwd": "str", "env": "list", "user": "str",
             "additional-gids": "list", "cap": "list", "no-new-privs": "bool", "apparmor": "str",
             "process-label": "str", "preserve-fds": "int", "cgroup": "list", "ignore-paused": "bool"},
    "ps": {"format": "str"},
    "pause": {},
    "resume": {},
    "update": _UPDATE,
    "list": {"format": "str", "quiet": "bool"},
    "events": {"stats": "bool", "interval": "str"},
    "features": {},
    "checkpoint": _CHECKPOINT,
    "restore": {**_CHECKPOINT, "bundle": "str", "console-socket": "str", "pid-file": "str", "detach": "bool",
                "no-subreaper": "bool", "no-pivot": "bool"},
}
ALIASES = {"b": "bundle", "d": "detach", "f": "force", "a": "all", "p": "process", "t": "tty", "e": "env",
           "u": "user", "g": "additional-gids", "c": "cap", "r": "resources", "q": "quiet", "cpu-shares": "cpu-share"}
# No container id: list and features take none.
NO_ID = ("list", "features")
GLOBALS = {"root": "str", "log": "str", "log-format": "str", "criu": "str", "rootless": "str",
           "debug": "bool", "systemd-cgroup": "bool", "help": "bool", "version": "bool"}
GLOBAL_ALIASES = {"h": "help", "v": "version"}


class VerbFailed(BerthError):
    """A failure a verb reports with runc's exit code for it (exec's 255) instead of 1."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Options:
    """The global flags, handed to every verb."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "criu")

    def __init__(self):
        self.root = DEFAULT_ROOT
        self.log = None
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.criu = "criu"


def parse_flags(args: list[str], table: dict, aliases: dict) -> tuple[dict, list[str]]:
    """Go's flag package: "-x", "--x", "--x=v", "--x v" until the first non-flag or "--";
    a bool takes "=true|false" only. Returns ({name: value}, the rest)."""
    found: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        name = aliases.get(name, name)
        kind = table.get(name)
        if kind is None:
            raise InvalidArgument(f"flag provided but not defined: -{arg.lstrip('-').partition('=')[0]}")
        i += 1
        if kind == "bool":
            if eq and value.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise InvalidArgument(f'invalid boolean value "{value}" for -{name}')
            found[name] = not eq or value.lower() in ("true", "1", "t")
            continue
        if not eq:
            if i >= len(args):
                raise InvalidArgument(f"flag needs an argument: -{name}")
            value = args[i]
            i += 1
        if kind == "int":
            try:
                value = int(value, 0)
            except ValueError:
                raise InvalidArgument(f'invalid value "{value}" for flag -{name}: parse error') from None
        if kind == "list":
            found.setdefault(name, []).append(value)
        else:
            found[name] = value
    return found, args[i:]


def parse_globals(args: list[str]) -> tuple[Options, dict, list[str]]:
    flags, rest = parse_flags(args, GLOBALS, GLOBAL_ALIASES)
    options = Options()
    options.root = flags.get("root", options.root)
    options.log = flags.get("log") or None
    options.log_format = flags.get("log-format", "text")
    if options.log_format not in ("text", "json"):
        raise InvalidArgument(f"invalid log-format: {options.log_format}")
    options.debug = flags.get("debug", False)
    options.systemd_cgroup = flags.get("systemd-cgroup", False)
    options.criu = flags.get("criu", options.criu)
    return options, flags, rest


def version_text() -> str:
    """runc's `--version`, which engines parse: "runc version X", "commit: ...", "spec: 1.x"."""
    from berth import __version__

    return f"berth-runtime version {__version__}\ncommit: berth-{__version__}\nspec: {SPEC_VERSION}\n"


def main(argv: list[str], log) -> int:
    try:
        options, flags, args = parse_globals(argv)
    except BaseException:
        set_umask(None)  # before the error is logged (--log may create its file)
        raise
    set_umask(args[0] if args else None)
    log.configure(options)
    if flags.get("version"):
        sys.stdout.write(version_text())
        return 0
    if not args or flags.get("help"):
        print(__doc__)
        return 0
    command = args.pop(0)
    table = COMMANDS.get(command)
    if table is None:
        raise InvalidArgument(f"unknown command {command!r}: see berth-runtime --help")
    table = {**table, "help": "bool"}
    aliases = {**ALIASES, "f": "format"} if command in ("ps", "list") else ALIASES
    found, rest = parse_flags(args, table, aliases)
    if found.get("help"):
        print(__doc__)
        return 0
    if command in NO_ID:
        container_id = None
    elif not rest:
        raise InvalidArgument(f'"{command}" requires a container id')
    else:
        container_id = rest.pop(0)
        validate_id(container_id)
    log.debug(f"{command} {container_id or ''}".rstrip())
    return _dispatch(command, options, found, container_id, rest)


def validate_id(container_id: str) -> None:
    """runc's idRegex: ^[\\w+-\\.]+$ and never "." or ".." (an id names a directory)."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
    if not container_id or container_id in (".", "..") or not set(container_id) <= allowed:
        raise InvalidArgument(f"invalid id format: {container_id}")


def _dispatch(command: str, options: Options, flags: dict, container_id: str | None, rest: list[str]) -> int:
    if command == "start":
        from berth.runtime import cli_start as verbs
    elif command in ("create", "run", "state", "kill", "delete", "list"):
        from berth.runtime import cli_lifecycle as verbs
    elif command in ("exec", "ps"):
        from berth.runtime import cli_exec as verbs
    elif command in ("pause", "resume", "update", "events"):
        from berth.runtime import cli_cgroup as verbs
    else:
        from berth.runtime import cli_info as verbs
    code = getattr(verbs, "cmd_" + command)(options, flags, container_id, rest)
    return code or 0


class Log:
    """runc's logrus: with --log, lines go to that file (text or JSON with level/msg/time,
    which containerd's shim reads back for the error it shows); errors also go to stderr."""

    def __init__(self):
        self.path = None
        self.format = "text"
        self.debugging = False

    def configure(self, options: Options) -> None:
        self.path, self.format, self.debugging = options.log, options.log_format, options.debug

    def debug(self, message: str) -> None:
        if self.debugging:
            self._write("debug", message)

    def error(self, message: str) -> None:
        if self.path:
            self._write("error", message)
        sys.stderr.write(f"berth-runtime: {message}\n")

    def _write(self, level: str, message: str) -> None:
        from berth import fastjson as json

        time = _rfc3339_now()
        if self.format == "json":
            line = json.dumps({"level": level, "msg": message, "time": time}) + "\n"
        else:
            line = f"time={json.dumps(time)} level={level} msg={json.dumps(message)}\n"
        if not self.path:
            sys.stderr.write(line)
            return
        import posix  # `os` costs ~1.5 ms that `start` does not otherwise pay

        try:
            fd = posix.open(self.path, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o644)
        except OSError:
            return  # the error still reaches stderr
        try:
            posix.write(fd, line.encode())
        finally:
            posix.close(fd)


def _rfc3339_now() -> str:
    import time

    now = time.time_ns()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now // 1_000_000_000))
    return f"{stamp}.{now % 1_000_000_000:09d}Z"


def set_umask(command: str | None) -> None:
    """berth.fs's process umask, first thing. `start` and `delete` make no file and import no
    berth.fs (start not even `os`, ~1.5 ms of its cost): the same umask is set through posix."""
    if command in ("start", "delete"):
        import posix

        posix.umask(START_UMASK)
    else:
        from berth.fs import set_process_umask

        set_process_umask()


START_UMASK = 0o022  # berth.fs.PROCESS_UMASK (tests/unit/test_runtime_cli_parse.py checks)


def entry() -> None:
    import gc  # a builtin: no cost

    from berth import GC_THRESHOLDS, exit_now

    gc.set_threshold(*GC_THRESHOLDS)
    log = Log()
    try:
        code = main(sys.argv[1:], log)
    except BerthError as err:
        log.error(str(err))
        code = getattr(err, "exit_code", 1)
    except OSError as err:
        log.error(_os_error(err))
        code = 1
    except ValueError as err:  # malformed JSON (config.json, --process, --resources)
        log.error(str(err))
        code = 1
    except KeyboardInterrupt:
        code = 130
    exit_now(code)


def _os_error(err: OSError) -> str:
    """Go's wording: "mkdir /path: read-only file system"."""
    from berth.errors import HOST_ERRNOS

    reason = HOST_ERRNOS.get(err.errno) or (err.strerror or str(err)).lower()
    return f"{err.filename}: {reason}" if err.filename else reason
