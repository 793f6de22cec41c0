"""Reaping a container's processes as their parent or subreaper: its exit code in docker's
terms, and the orphans of its pid namespace handed to us. Plain os calls only: the lean
monitor imports this."""

import os


def wait_exit_code(pid: int) -> int:
    """Reap `pid` (the caller is its parent or subreaper) and return docker's exit code."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
        except ChildProcessError:
            return 255  # reaped already: nobody can tell its code
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def reap_orphans() -> None:
    """Processes of the container's pid namespace are re-parented to us (the subreaper)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
