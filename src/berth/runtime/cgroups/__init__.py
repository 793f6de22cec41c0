"""One interface over cgroup v1 and v2: create, apply resources, add a pid, destroy.

`open_cgroup(path)` picks the backend by what the host mounts at /sys/fs/cgroup."""

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def open_cgroup(path: str, root: str = CGROUP_ROOT):
    """`path` is OCI linux.cgroupsPath, e.g. "/berth/<id>"."""
    if os.path.exists(os.path.join(root, "cgroup.controllers")):
        from berth.runtime.cgroups.v2 import V2Cgroup

        return V2Cgroup(path, root)
    from berth.runtime.cgroups.v1 import V1Cgroup

    return V1Cgroup(path, root)


def write(directory: str, name: str, value: str) -> None:
    fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


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
            import time

            time.sleep(0.002)
