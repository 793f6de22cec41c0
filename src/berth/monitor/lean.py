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


def main(plan_text: str) -> None:
    plan = fastjson.loads(plan_text)
    try:
        with open("/proc/self/comm", "w") as f:
            f.write("berth-monitor")
    except OSError:
        pass
    log = LogWriter(plan["log"])
    sources = {fd: stream for fd, stream in plan["sources"]}
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
                os.close(fd)
                continue
            log.write(sources[fd], data)
    log.flush()
    log.close()
    for fd in plan["stdin"]:
        os.close(fd)
    plan["code"] = wait_exit_code(plan["pid"])
    while True:  # orphans of its pid namespace were handed to us too
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    exec_python("berth.monitor.supervisor", "resume", plan)


def wait_exit_code(pid: int) -> int:
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255  # reaped already: nobody can tell its code
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def exec_python(module: str, function: str, plan: dict) -> None:
    """Replace this process by `module.function(plan)` in a fresh interpreter (no site, our
    own package path), keeping every inheritable fd. Never returns."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    boot = f"import sys; sys.path.insert(0, {package_parent!r}); from {module} import {function}; " \
           f"{function}(sys.argv[1])"
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", boot, fastjson.dumps(plan)])
