"""`berth update [OPTIONS] CONTAINER...`: change the resource limits and restart policy of
containers, running or not (docker's `container update`)."""

import sys

from berth.cli.flags import INT, STRING, Command, Flag, parse_or_help
from berth.engine.resources import update_container, update_fields
from berth.errors import BerthError

UPDATE = Command("update", "berth update [OPTIONS] CONTAINER [CONTAINER...]",
                 "Update configuration of one or more containers",
                 [Flag("blkio-weight", None, STRING, None,
                       "Block IO (relative weight), between 10 and 1000, or 0 to disable", "uint16"),
                  Flag("cpu-period", None, INT, 0, "Limit CPU CFS (Completely Fair Scheduler) period"),
                  Flag("cpu-quota", None, INT, 0, "Limit CPU CFS (Completely Fair Scheduler) quota"),
                  Flag("cpu-rt-period", None, INT, 0, "Limit the CPU real-time period in microseconds"),
                  Flag("cpu-rt-runtime", None, INT, 0, "Limit the CPU real-time runtime in microseconds"),
                  Flag("cpuset-cpus", None, STRING, "", "CPUs in which to allow execution (0-3, 0,1)"),
                  Flag("cpuset-mems", None, STRING, "", "MEMs in which to allow execution (0-3, 0,1)"),
                  Flag("cpu-shares", "c", INT, 0, "CPU shares (relative weight)"),
                  Flag("cpus", None, STRING, None, "Number of CPUs", "decimal"),
                  Flag("memory", "m", STRING, None, "Memory limit", "bytes"),
                  Flag("memory-reservation", None, STRING, None, "Memory soft limit", "bytes"),
                  Flag("memory-swap", None, STRING, None,
                       "Swap limit equal to memory plus swap: -1 to enable unlimited swap", "bytes"),
                  Flag("pids-limit", None, INT, 0, "Tune container pids limit (set -1 for unlimited)"),
                  Flag("restart", None, STRING, "", "Restart policy to apply when a container exits")],
                 min_args=1)


def cmd_update(engine, argv: list[str]) -> int:
    opts, args = parse_or_help(UPDATE, argv)
    if opts.help:
        return 0
    if not opts._given:
        print("you must provide one or more flags when using this command", file=sys.stderr)
        return 1

    changes = update_fields(opts)
    restart = None
    if opts.restart:
        from berth.cli.run import parse_restart_policy  # lazy: only --restart

        restart = parse_restart_policy(opts.restart)
    warnings = []
    failed = False
    for ref in args:
        try:
            warnings.extend(update_container(engine, ref, dict(changes), restart))
            print(ref)
        except BerthError as err:
            print(f"Error response from daemon: {err}", file=sys.stderr)
            failed = True
    if warnings:
        print("\n".join(warnings))
    return 1 if failed else 0
