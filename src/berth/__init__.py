"""berth: a Docker-compatible container engine."""

__version__ = "0.1.0"
API_VERSION = "1.47"

# The collector's young generation at 50,000 allocations, not 700, in a command's process
# (berth's CLI, berth-runtime): a command allocates some 100,000 objects as it imports what it
# needs, and each full collection meanwhile walked all of them again (~2 ms of a 55 ms `run`).
# A long-lived command (an API server, a foreground container) still collects its cycles.
GC_THRESHOLDS = (50_000, 10, 10)


def exit_now(code: int) -> None:
    """End a command (berth's CLI, berth-runtime) without the interpreter's finalization, which
    frees every module and object one by one where the kernel frees them at once: ~1.5 ms of a
    berth-runtime verb's ~10, 2-3 ms of `berth ps`. stdout and stderr are flushed first; nothing
    else may be pending then: files are closed as they are done with, berth's threads are
    daemons nobody waits for, and berth registers no atexit or __del__ cleanup."""
    import posix  # `os` costs ~1.5 ms that `berth-runtime start` does not otherwise pay
    import sys

    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # started with the fd closed
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: what it held is lost either way
                pass
    posix._exit(code)
