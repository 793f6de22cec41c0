"""exec must not hand the container a way to reach the host's binaries: the process that
joins the container is non-dumpable until it execs (runc CVE-2019-5736)."""

import subprocess
import time


def test_joining_process_exe_cannot_be_read_from_inside(busybox):
    # Inside: keep resolving /proc/<pid>/exe of every process. A joining process that were
    # dumpable would show the host interpreter (python) there while it sets itself up.
    watcher = ("while true; do for p in /proc/[0-9]*; do readlink $p/exe; done; done "
               "| grep -m1 -i python > /tmp/seen; sleep 3600")
    busybox.ok("run", "-d", "--name", "watched", "busybox", "sh", "-c", watcher)
    try:
        time.sleep(0.2)
        for _ in range(30):
            subprocess.run(busybox.cmd("exec", "watched", "true"), check=True, capture_output=True, timeout=30)
        time.sleep(0.2)
        seen = busybox.ok("exec", "watched", "cat", "/tmp/seen")
        assert seen == "", f"the container resolved a joining process's exe: {seen!r}"
    finally:
        busybox("rm", "-f", "watched")


def test_exec_process_is_in_the_container_cgroup_and_namespaces(busybox):
    busybox.ok("run", "-d", "--name", "host", "busybox", "sleep", "60")
    try:
        container = busybox.ok("exec", "host", "sh", "-c", "for f in 1/ns/pid self/ns/pid 1/ns/mnt self/ns/mnt; "
                               "do readlink /proc/$f; done; cat /proc/self/cgroup").split()
        assert container[0] == container[1] and container[2] == container[3]
        assert all(line.endswith(":/") for line in container[4:]), container
    finally:
        busybox("rm", "-f", "host")
