"""The idle part of a detached supervisor. Once the container runs, the supervisor execs a
fresh interpreter that imports only this (os, select, the json-file writer): a container
that runs for days then costs about a bare interpreter, not everything starting it needed.
When the container ends, it execs berth's supervisor again to record the end and apply the
restart policy (supervisor.resume). Same process throughout: the container's parent (we are
its subreaper, kept across exec), the pid and start time berth recorded for the monitor."""

import os
import select
import sys

from berth import fastjson
from berth.monitor.logfile import LogWriter
from berth.runtime.reap import reap_orphans, wait_exit_code


def main(plan_text: str) -> None:
    plan = fastjson.loads(plan_text)
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("berth-monitor")
    except OSError:
        pass
    log = LogWriter(plan["log"])
    copy_output({fd: stream for fd, stream in plan["sources"]}, log)
    log.close()
    for fd in [fd for fd, _ in plan["sources"]] + plan["stdin"]:
        os.close(fd)
    plan["code"] = wait_exit_code(plan["pid"])
    reap_orphans()
    exec_python("berth.monitor.supervisor", "resume", plan)


STREAM_FDS = {"stdout": 1, "stderr": 2}


def copy_output(sources: dict, log: LogWriter, echo=None) -> None:
    """Copy the container's output ({fd: "stdout"|"stderr"}) to the json-file log until every
    source closes; with `echo(fd, data)`, also to our own stdout/stderr (an attached run)."""
    while sources:
        try:
            ready, _, _ = select.select(list(sources), [], [])
        except InterruptedError:
            continue
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO from a pty master: the container side is gone
                data = b""
            if not data:
                del sources[fd]
                continue
            log.write(sources[fd], data)
            if echo is not None:
                echo(STREAM_FDS[sources[fd]], data)
    log.flush()


def exec_python(module: str, function: str, plan: dict) -> None:
    """Replace this process by `module.function(plan)` in a fresh interpreter (no site, our
    own package path), keeping every inheritable fd. Never returns."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    boot = f"import sys; sys.path.insert(0, {package_parent!r}); from {module} import {function}; " \
           f"{function}(sys.argv[1])"
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", boot, fastjson.dumps(plan)])
