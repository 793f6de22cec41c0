"""exec must not hand the container a way to reach the host's binaries: the process that
joins the container is non-dumpable until it execs (runc CVE-2019-5736)."""

import os
import subprocess

from conftest import wait_for


def test_joining_process_exe_cannot_be_read_from_inside(busybox):
    # Inside: keep resolving /proc/<pid>/exe of every process. A joining process that were
    # dumpable would show the host interpreter (python) there while it sets itself up. Each
    # pass over /proc is counted in /tmp/passes, which the host reads in the upper dir.
    watcher = ("n=0; while true; do n=$((n+1)); echo $n > /tmp/passes; for p in /proc/[0-9]*; do readlink $p/exe; "
               "done; done | grep -m1 -i python > /tmp/seen; sleep 3600")
    busybox.ok("run", "-d", "--name", "watched", "busybox", "sh", "-c", watcher)
    try:
        upper = busybox.ok("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "watched").strip()

        def passes() -> int:
            try:
                with open(os.path.join(upper, "tmp", "passes")) as f:
                    return int(f.read().strip() or 0)
            except FileNotFoundError:
                return 0

        wait_for(passes, what="the watcher to start")
        for _ in range(30):
            subprocess.run(busybox.cmd("exec", "watched", "true"), check=True, capture_output=True, timeout=30)
        done = passes() + 2  # a whole pass over /proc after the last exec
        wait_for(lambda: passes() >= done, what="the watcher to finish a pass after the last exec")
        seen = busybox.ok("exec", "watched", "cat", "/tmp/seen")
        assert seen == "", f"the container resolved a joining process's exe: {seen!r}"
    finally:
        busybox("rm", "-f", "watched")


def test_exec_process_is_in_the_container_cgroup_and_namespaces(busybox):
    busybox.ok("run", "-d", "--name", "host", "--cgroupns", "private", "busybox", "sleep", "60")
    try:
        container = busybox.ok("exec", "host", "sh", "-c", "for f in 1/ns/pid self/ns/pid 1/ns/mnt self/ns/mnt; "
                               "do readlink /proc/$f; done; cat /proc/self/cgroup").split()
        assert container[0] == container[1] and container[2] == container[3]
        assert all(line.endswith(":/") for line in container[4:]), container
    finally:
        busybox("rm", "-f", "host")
