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


# runc's libcontainer BlkioStats keys (types.Blkio) for the v1 files, in runc's order of
# preference: the first group whose first file has entries is the one reported.
BLKIO_V1_GROUPS = (
    (("blkio.bfq.sectors_recursive", "sectorsRecursive"),
     ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.bfq.time_recursive", "ioTimeRecursive"),
     ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive")),
    (("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
     ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive")),
    (("blkio.sectors_recursive", "sectorsRecursive"),
     ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
     ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
     ("blkio.io_merged_recursive", "ioMergedRecursive"),
     ("blkio.io_queued_recursive", "ioQueueRecursive"),
     ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive"),
     ("blkio.io_serviced_recursive", "ioServicedRecursive"),
     ("blkio.time_recursive", "ioTimeRecursive")),
    (("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"),
     ("blkio.throttle.io_serviced_recursive", "ioServicedRecursive")),
    (("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive"),
     ("blkio.throttle.io_serviced", "ioServicedRecursive")),
)


def blkio_entry(major: int, minor: int, op: str, value: int) -> dict:
    """runc's types.BlkioStatEntry: every field omitempty."""
    entry = {"major": major, "minor": minor, "op": op, "value": value}
    return {key: value for key, value in entry.items() if value}


def blkio_v1(directory: str) -> dict:
    """runc's blkio stats of a v1 blkio cgroup ("8:0 Read 4096" lines; "Total N" skipped)."""
    for group in BLKIO_V1_GROUPS:
        found = {}
        for index, (name, key) in enumerate(group):
            entries = []
            for line in (read(directory, name) or "").splitlines():
                fields = line.split()
                if len(fields) < 3:
                    continue  # "Total 0"
                major, _, minor = fields[0].partition(":")
                entries.append(blkio_entry(int(major), int(minor), fields[1] if len(fields) == 3 else "",
                                           int(fields[-1])))
            if not entries:
                if index == 0:
                    break  # runc: the next group
                return found
            found[key] = entries
        else:
            return found
    return {}


def blkio_v2(directory: str) -> dict:
    """runc's blkio stats from a v2 io.stat ("8:0 rbytes=.. wbytes=.. rios=.. wios=.."): bytes as
    ioServiceBytesRecursive, operations as ioServicedRecursive, Read and Write."""
    found: dict = {}
    kinds = {"rbytes": ("ioServiceBytesRecursive", "Read"), "wbytes": ("ioServiceBytesRecursive", "Write"),
             "rios": ("ioServicedRecursive", "Read"), "wios": ("ioServicedRecursive", "Write")}
    for line in (read(directory, "io.stat") or "").splitlines():
        fields = line.split()
        if not fields:
            continue
        major, _, minor = fields[0].partition(":")
        for field in fields[1:]:
            name, _, value = field.partition("=")
            if name in kinds and value.isdigit():
                key, op = kinds[name]
                found.setdefault(key, []).append(blkio_entry(int(major), int(minor), op, int(value)))
    return found


def huge_page_sizes() -> list[str]:
    """The host's huge page sizes as runc names them ("2MB", "1GB"), from /sys/kernel/mm/hugepages."""
    try:
        names = os.listdir("/sys/kernel/mm/hugepages")
    except FileNotFoundError:
        return []
    sizes = []
    for name in sorted(names):
        kilobytes = name.removeprefix("hugepages-").removesuffix("kB")
        if not kilobytes.isdigit():
            continue
        size, unit = int(kilobytes), 0
        while size >= 1024 and size % 1024 == 0 and unit < 3:
            size, unit = size // 1024, unit + 1
        sizes.append(f"{size}{('KB', 'MB', 'GB', 'TB')[unit]}")
    return sizes


def hugetlb_stat(usage: int, max_usage: int, failcnt: int) -> dict:
    """runc's types.Hugetlb: usage and max omitempty, failcnt always."""
    stat = {"usage": usage, "max": max_usage}
    return {**{key: value for key, value in stat.items() if value}, "failcnt": failcnt}


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
