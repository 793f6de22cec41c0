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


def warm_attach_lock() -> None:
    """Start, in a background thread, the slow part of the first cgroup attach.

    Moving a task between cgroups takes a global percpu rwsem whose writer waits for an
    RCU grace period (~10-15 ms here) unless another attach happened just before. A no-op
    attach of ourselves to our own cgroup pays that wait now, while the caller does other
    work, so the container's real attach a few ms later is fast (~0.2 ms)."""
    import _thread

    _thread.start_new_thread(_attach_self, ())


def _attach_self() -> None:
    try:
        with open("/proc/self/cgroup") as f:
            line = f.readline().rstrip("\n")
        _, controllers, path = line.split(":", 2)
        hierarchy = "" if controllers == "" else (controllers.split(",")[0].removeprefix("name="))
        directory = os.path.join(CGROUP_ROOT, hierarchy, path.lstrip("/"))
        write(directory, "cgroup.procs", str(os.getpid()))
    except BaseException:
        pass  # only an optimisation


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
