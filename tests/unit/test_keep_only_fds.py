"""runtime.forked.keep_only_fds, what a forked helper (a probe launcher, the proxy, the
resolver, the log compressor) keeps of its parent's fds: stdio and the ones named, with -1
standing for none (a probe launcher's freezer state file where there is no freezer)."""

import os


def open_after(*keep: int) -> set[int]:
    """In a forked child: keep_only_fds(*keep), then which fds are open."""
    from berth.runtime.forked import keep_only_fds

    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            keep_only_fds(writer, *keep)
            still = [fd for fd in range(64) if fd != writer and _is_open(fd)]
            os.write(writer, " ".join(map(str, still)).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as f:
        seen = f.read().decode()
    os.waitpid(pid, 0)
    return {int(fd) for fd in seen.split()}


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_only_stdio_and_the_named_fds_stay():
    pipes = [os.pipe() for _ in range(3)]
    try:
        kept = {pipes[0][0], pipes[2][1]}
        assert open_after(*kept) == {0, 1, 2} | kept
    finally:
        for pair in pipes:
            for fd in pair:
                os.close(fd)


def test_minus_one_keeps_nothing_more_and_closes_nothing_named():
    """os.closerange(3, -1) closes every fd from 3 up: a launcher given no freezer (-1) lost
    its own request pipe that way, and died at its first read."""
    reader, writer = os.pipe()
    try:
        assert open_after(-1, reader) == {0, 1, 2, reader}
    finally:
        os.close(reader)
        os.close(writer)
