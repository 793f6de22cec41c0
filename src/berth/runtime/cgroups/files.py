"""The files of a cgroup directory: write, read and remove them, with runc's wording for a
refused value, and the usage numbers read from them (CgroupStats). The v1 and v2 backends
and the package's own functions share these; this module imports neither of them."""

import os
import time

from berth.errors import BerthError


def write(directory: str, name: str, value: str) -> None:
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def set_value(directory: str, name: str, value) -> None:
    """write(), with runc's wording when the kernel refuses the value."""
    try:
        write(directory, name, str(value))
    except OSError as err:
        raise write_error(directory, name, value, err) from None


def write_error(directory: str, name: str, value, err: OSError):
    path = os.path.join(directory, name)
    return BerthError(f'failed to write "{value}": write {path}: {(err.strerror or str(err)).lower()}')


def read(directory: str, name: str) -> str | None:
    """A cgroup file's content without the trailing newline; None if it does not exist."""
    try:
        with open(os.path.join(directory, name)) as f:
            return f.read().rstrip("\n")
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as err:
        if err.errno == 19:  # ENODEV: the cgroup was removed while we read it
            return None
        raise


def read_int(directory: str, name: str, default: int = 0) -> int:
    value = read(directory, name)
    if not value or value == "max":
        return default
    return int(value.split()[0])


def read_keyed(directory: str, name: str) -> dict:
    """"key value" lines (memory.stat, cpu.stat, memory.events) as a dict of ints."""
    found = {}
    for line in (read(directory, name) or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            found[key] = int(value)
        except ValueError:
            pass
    return found


class CgroupStats:
    """Usage numbers of one cgroup, the fields docker's stats need. `memory_limit` is None
    when there is no limit; block I/O is summed over devices."""

    __slots__ = ("cpu_usage", "percpu_usage", "memory_usage", "memory_limit", "memory_max_usage", "memory_stats",
                 "pids_current", "pids_limit", "blkio_read", "blkio_write")

    def __init__(self):
        self.cpu_usage = 0  # nanoseconds of CPU time, all tasks
        self.percpu_usage = []
        self.memory_usage = 0  # bytes charged, page cache included
        self.memory_limit = None
        self.memory_max_usage = 0
        self.memory_stats = {}  # memory.stat as docker shows it (v1: with total_* keys)
        self.pids_current = 0
        self.pids_limit = None
        self.blkio_read = 0
        self.blkio_write = 0

    def memory_usage_no_cache(self) -> int:
        """docker's MEM USAGE: usage minus inactive page cache (v1 total_inactive_file,
        v2 inactive_file), like cadvisor and containerd's CRI."""
        for key in ("total_inactive_file", "inactive_file"):
            inactive = self.memory_stats.get(key)
            if inactive is not None and inactive < self.memory_usage:
                return self.memory_usage - inactive
        return self.memory_usage


def remove_dir(directory: str) -> None:
    """rmdir a cgroup, retrying briefly: the kernel may still be releasing exited tasks."""
    for attempt in range(50):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError as err:
            if err.errno != 16 or attempt == 49:  # EBUSY
                raise

            time.sleep(0.002)
