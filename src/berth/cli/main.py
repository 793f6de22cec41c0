"""`berth [global flags] COMMAND ...`: global flags, command dispatch, error -> exit code.

Command modules are imported only when their command runs, so `berth run` pays for
nothing it does not use."""

import gc
import os
import sys

from berth import GC_THRESHOLDS, __version__, exit_now
from berth.errors import BerthError, UsageError, host_failure
from berth.fs import set_process_umask

# command -> (module, function); "image ls" style groups map onto the same functions.
COMMANDS = {
    "run": ("berth.cli.run", "cmd_run"),
    "create": ("berth.cli.run", "cmd_create"),
    "start": ("berth.cli.run", "cmd_start"),
    "attach": ("berth.cli.attach", "cmd_attach"),
    "audit": ("berth.cli.audit", "cmd_audit"),
    "rm": ("berth.cli.containers", "cmd_rm"),
    "ps": ("berth.cli.containers", "cmd_ps"),
    "stop": ("berth.cli.lifecycle", "cmd_stop"),
    "kill": ("berth.cli.lifecycle", "cmd_kill"),
    "wait": ("berth.cli.lifecycle", "cmd_wait"),
    "restart": ("berth.cli.lifecycle", "cmd_restart"),
    "pause": ("berth.cli.lifecycle", "cmd_pause"),
    "unpause": ("berth.cli.lifecycle", "cmd_unpause"),
    "rename": ("berth.cli.lifecycle", "cmd_rename"),
    "port": ("berth.cli.lifecycle", "cmd_port"),
    "exec": ("berth.cli.exec", "cmd_exec"),
    "logs": ("berth.cli.logs", "cmd_logs"),
    "top": ("berth.cli.top", "cmd_top"),
    "stats": ("berth.cli.stats", "cmd_stats"),
    "update": ("berth.cli.update", "cmd_update"),
    "cp": ("berth.cli.cp", "cmd_cp"),
    "diff": ("berth.cli.commit", "cmd_diff"),
    "commit": ("berth.cli.commit", "cmd_commit"),
    "history": ("berth.cli.commit", "cmd_history"),
    "export": ("berth.cli.commit", "cmd_export"),
    "build": ("berth.cli.build", "cmd_build"),
    "save": ("berth.cli.archive", "cmd_save"),
    "load": ("berth.cli.archive", "cmd_load"),
    "inspect": ("berth.cli.inspect", "cmd_inspect"),
    "import": ("berth.cli.images", "cmd_import"),
    "images": ("berth.cli.images", "cmd_images"),
    "tag": ("berth.cli.images", "cmd_tag"),
    "rmi": ("berth.cli.images", "cmd_rmi"),
    "version": ("berth.cli.system", "cmd_version"),
    "info": ("berth.cli.system", "cmd_info"),
    "events": ("berth.cli.events", "cmd_events"),
    "pull": ("berth.cli.registry", "cmd_pull"),
    "push": ("berth.cli.registry", "cmd_push"),
    "login": ("berth.cli.registry", "cmd_login"),
    "logout": ("berth.cli.registry", "cmd_logout"),
}
GROUPS = {
    "builder": {"build": "build", "prune": ("berth.cli.build", "cmd_builder_prune")},
    "image": {"ls": "images", "list": "images", "import": "import", "tag": "tag", "rm": "rmi", "history": "history",
              "build": "build", "save": "save", "load": "load", "remove": "rmi", "pull": "pull", "push": "push",
              "inspect": ("berth.cli.inspect", "cmd_image_inspect"),
              "prune": ("berth.cli.prune", "cmd_image_prune")},
    "container": {"run": "run", "create": "create", "start": "start", "attach": "attach", "rm": "rm", "ls": "ps",
                  "list": "ps", "ps": "ps", "inspect": ("berth.cli.inspect", "cmd_container_inspect"), "stop": "stop",
                  "kill": "kill", "wait": "wait", "restart": "restart", "pause": "pause", "unpause": "unpause",
                  "rename": "rename", "port": "port", "exec": "exec", "logs": "logs", "top": "top", "cp": "cp",
                  "diff": "diff", "commit": "commit", "export": "export", "stats": "stats", "update": "update",
                  "prune": ("berth.cli.system_prune", "cmd_container_prune")},
    "system": {"info": "info", "df": ("berth.cli.prune", "cmd_system_df"), "events": "events",
               "prune": ("berth.cli.system_prune", "cmd_system_prune"),
               "restart-policies": ("berth.cli.boot", "cmd_restart_policies"),
               "reset": ("berth.cli.system_prune", "cmd_system_reset"),
               "service": ("berth.cli.service", "cmd_service")},
    "network": {"ls": ("berth.cli.network", "cmd_network_ls"), "list": ("berth.cli.network", "cmd_network_ls"),
                "inspect": ("berth.cli.network", "cmd_network_inspect"),
                "create": ("berth.cli.network", "cmd_network_create"),
                "rm": ("berth.cli.network", "cmd_network_rm"), "remove": ("berth.cli.network", "cmd_network_rm"),
                "prune": ("berth.cli.network", "cmd_network_prune"),
                "connect": ("berth.cli.network", "cmd_network_connect"),
                "disconnect": ("berth.cli.network", "cmd_network_disconnect")},
    "volume": {"create": ("berth.cli.volume", "cmd_volume_create"), "ls": ("berth.cli.volume", "cmd_volume_ls"),
               "list": ("berth.cli.volume", "cmd_volume_ls"), "inspect": ("berth.cli.volume", "cmd_volume_inspect"),
               "rm": ("berth.cli.volume", "cmd_volume_rm"), "remove": ("berth.cli.volume", "cmd_volume_rm"),
               "prune": ("berth.cli.volume", "cmd_volume_prune")},
}

GLOBAL_USAGE = """
Usage:  berth [OPTIONS] COMMAND

A Docker-compatible container engine

Global Options:
      --root string       Root of persistent state (default "/var/lib/berth", env BERTH_ROOT)
      --run-root string   Root of per-boot state (default "/run/berth", env BERTH_RUN_ROOT)
      --config-file string  Engine settings (default "/etc/berth/daemon.json", env BERTH_CONFIG)
      --bip string        Bridge address and subnet, e.g. 192.168.0.1/24
      --fixed-cidr string Container addresses from this part of the bridge subnet
      --mtu int           MTU of the bridge, veths and eth0 (default 1500)
  -b, --bridge string     Use this existing bridge ("none" turns bridged networking off)
      --default-bridge string  Name of the bridge berth creates (default "berth0")
      --icc               Inter-container communication on the bridge (default true)
      --ip-forward        Enable net.ipv4.ip_forward (default true)
      --iptables          Let berth manage its nftables rules (default true)
      --dns list          Default DNS servers of containers
      --dns-search list   Default DNS search domains of containers
      --dns-opt list      Default DNS options of containers
  -D, --debug             Print tracebacks for errors
  -v, --version           Print version information and quit

Commands:
  attach      Attach local standard input, output, and error streams to a running container
  audit       Show each container's isolation, weakenings and the flags that caused them
  build       Build an image from a Dockerfile
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  create      Create a new container
  diff        Inspect changes to files or directories on a container's filesystem
  events      Get real time events from the server
  exec        Execute a command in a running container
  export      Export a container's filesystem as a tar archive
  history     Show the history of an image
  images      List images
  import      Import the contents of a tarball to create a filesystem image
  info        Display system-wide information
  inspect     Return low-level information on containers or images
  kill        Kill one or more running containers
  load        Load an image from a tar archive or STDIN
  login       Authenticate to a registry
  logout      Log out from a registry
  logs        Fetch the logs of a container
  pause       Pause all processes within one or more containers
  port        List port mappings or a specific mapping for the container
  ps          List containers
  pull        Download an image from a registry
  push        Upload an image to a registry
  rename      Rename a container
  restart     Restart one or more containers
  rm          Remove one or more containers
  rmi         Remove one or more images
  run         Create and run a new container from an image
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  start       Start one or more stopped containers
  stats       Display a live stream of container(s) resource usage statistics
  stop        Stop one or more running containers
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
  top         Display the running processes of a container
  unpause     Unpause all processes within one or more containers
  update      Update configuration of one or more containers
  version     Show the berth version information
  wait        Block until one or more containers stop, then print their exit codes

Management Commands:
  builder     Manage builds
  container   Manage containers
  image       Manage images
  network     Manage networks
  system      Manage berth
  volume      Manage volumes
"""


# dockerd's bridge flags, as global flags (berth.engine.settings.FLAGS holds their meaning)
SETTING_FLAGS = ("--bip", "--fixed-cidr", "--mtu", "-b", "--bridge", "--icc", "--ip-forward", "--iptables", "--dns",
                 "--dns-search", "--dns-opt", "--default-bridge")
BOOL_SETTING_FLAGS = ("--icc", "--ip-forward", "--iptables")


class Globals:
    __slots__ = ("root", "run_root", "debug", "config_file", "overrides")

    def __init__(self):
        self.root = None
        self.run_root = None
        self.debug = bool(os.environ.get("BERTH_DEBUG"))
        self.config_file = None
        self.overrides = {}  # engine settings given as flags (dockerd's names), over daemon.json


def parse_globals(argv: list[str]) -> tuple[Globals, list[str]]:
    g = Globals()
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in SETTING_FLAGS and (eq or name not in BOOL_SETTING_FLAGS):
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                value = argv[i]
            from berth.engine.settings import flag_value  # lazy: only engine-setting flags

            flag_value(name, value, g.overrides)
        elif name in BOOL_SETTING_FLAGS:
            from berth.engine.settings import flag_value  # lazy: only engine-setting flags

            flag_value(name, "true", g.overrides)
        elif name in ("--root", "--run-root", "--log-level", "-l", "-H", "--host", "--config", "--config-file"):
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                value = argv[i]
            if name == "--root":
                g.root = value
            elif name == "--run-root":
                g.run_root = value
            elif name == "--config-file":
                g.config_file = value
        elif arg in ("-D", "--debug"):
            g.debug = True
        elif arg in ("-v", "--version"):
            print(f"berth version {__version__}")
            raise SystemExit(0)
        elif arg in ("-h", "--help"):
            print(GLOBAL_USAGE)
            raise SystemExit(0)
        else:
            raise UsageError(f"unknown flag: {arg}\nSee 'berth --help'.")
        i += 1
    return g, argv[i:]


def resolve_command(args: list[str]):
    if not args:
        return None, []
    name, rest = args[0], args[1:]
    target = COMMANDS.get(name)
    if target is None and name in GROUPS:
        if not rest or rest[0] in ("-h", "--help"):
            subs = ", ".join(sorted(GROUPS[name]))
            print(f"\nUsage:  berth {name} COMMAND\n\nCommands: {subs}\n")
            raise SystemExit(0)
        sub = GROUPS[name].get(rest[0])
        if sub is None:
            raise BerthError(f"unknown command \"{rest[0]}\" for \"berth {name}\"\nSee 'berth {name} --help'.")
        target = sub if isinstance(sub, tuple) else COMMANDS[sub]
        rest = rest[1:]
    if target is None:
        raise BerthError(f"unknown command \"{name}\" for \"berth\"\nSee 'berth --help'.")
    return target, rest


# docker's CLI: 125 for a command line it cannot parse and for any failure of run/create before
# the container runs; 126/127 for a command that cannot be run / is not found; 1 otherwise.
EXIT_CODES = {"usage": 125, "cannot_invoke": 126, "command_not_found": 127}
CREATING = ("cmd_run", "cmd_create")


def exit_code(err: BerthError, function: str | None) -> int:
    return EXIT_CODES.get(err.kind) or (125 if function in CREATING else 1)


def main(argv: list[str] | None = None) -> int:
    set_process_umask()
    argv = sys.argv[1:] if argv is None else argv
    debug = bool(os.environ.get("BERTH_DEBUG"))
    function = None
    try:
        g, args = parse_globals(argv)
        debug = g.debug
        target, rest = resolve_command(args)
        if target is None:
            print(GLOBAL_USAGE)
            return 0
        module_name, function = target
        module = __import__(module_name, fromlist=[function])
        from berth.engine.containers import Engine  # lazy: not for usage or --version
        from berth.paths import Paths  # lazy: not for usage or --version

        return getattr(module, function)(Engine(Paths(g.root, g.run_root), g.config_file, g.overrides), rest) or 0
    except BerthError as err:
        if debug:
            import traceback  # lazy: only BERTH_DEBUG

            traceback.print_exc()
        print(f"Error: {err}", file=sys.stderr)
        return exit_code(err, function)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as err:  # a bug or an unexpected host failure: one line, no traceback
        if debug:
            import traceback  # lazy: only BERTH_DEBUG

            traceback.print_exc()
        # a full or read-only disk in docker's words; anything else names its type (a bug shows as one)
        print(f"Error: {host_failure(err) or f'{type(err).__name__}: {err}'}", file=sys.stderr)
        return exit_code(BerthError(), function)


def entry() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    exit_now(main())
