"""Use cases on running containers, called as a front door calls them (no terminal, no CLI
printing): the containers are started through the CLI, then top, stats, port, ps rows,
diff, export, restart and wait are engine calls that return data."""

import os
import signal
import tarfile
import threading

import pytest

from berth.engine.commit import diff, export
from berth.engine.container_list import list_containers
from berth.engine.containers import Engine
from berth.engine.lifecycle import restart, wait
from berth.engine.ports import port_lines
from berth.engine.stats import stats
from berth.engine.top import top
from berth.errors import NotFound
from berth.paths import Paths
from conftest import wait_for


def engine_of(b) -> Engine:
    return Engine(Paths(b.root, b.run_root), b.config_file)


def test_top_and_stats_of_a_running_container(busybox):
    container_id = busybox.ok("run", "-d", "--network", "none", "--name", "busy", "-m", "64m", "busybox",
                              "sh", "-c", "sleep 300 & sleep 301 & wait").strip()
    engine = engine_of(busybox)
    record = engine.get("busy")
    titles, processes = wait_for(lambda: (found := top(record, "-o pid,args"))[1][2:] and found,
                                 what="the three processes")
    assert titles == [b"PID", b"COMMAND"]
    assert sorted(p[1] for p in processes) == [b"sh -c sleep 300 & sleep 301 & wait", b"sleep 300", b"sleep 301"]
    assert int(processes[0][0]) != os.getpid()

    [[figures]] = list(stats(engine, [container_id], stream=False, interval=0.2))
    assert (figures.id, figures.name, figures.running) == (container_id, "busy", True)
    assert figures.pids == 3
    assert 0 < figures.memory <= figures.memory_limit == 64 * 1024 * 1024
    assert figures.cpu_percent >= 0.0 and (figures.net_rx, figures.net_tx) == (0, 0)  # only lo

    rounds = stats(engine, [container_id], interval=0.2)  # streaming: ends once the container is gone
    assert next(rounds)[0].running
    busybox.ok("rm", "-f", "busy")
    assert next(rounds, None) is None


def test_port_lines_and_ps_row_of_a_published_container(busybox):
    busybox.ok("run", "-d", "--name", "web", "-p", "127.0.0.1::80", "busybox", "sleep", "300")
    engine = engine_of(busybox)
    record = engine.get("web")
    [line] = port_lines(record)
    assert line.startswith("80/tcp -> 127.0.0.1:")
    host_port = line.rpartition(":")[2]
    assert port_lines(record, "80", "web") == [f"127.0.0.1:{host_port}"]
    with pytest.raises(NotFound, match="No public port '81' published for web"):
        port_lines(record, "81", "web")
    [row] = list_containers(engine)
    assert row.ports == f"127.0.0.1:{host_port}->80/tcp"
    assert row.status.startswith("Up ")


def test_diff_and_export_of_a_containers_changes(busybox, tmp_path):
    busybox.ok("run", "--network", "none", "--name", "changed", "busybox", "sh", "-c",
               "echo hi > /new && rm /bin/true && mkdir -p /tmp/made")
    record = engine_of(busybox).get("changed")
    changes = diff(record)
    assert ("A", "/new") in changes and ("D", "/bin/true") in changes and ("A", "/tmp/made") in changes
    out = tmp_path / "rootfs.tar"
    with open(out, "wb") as f:
        export(record, f.fileno())
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("new").read() == b"hi\n"
    assert "bin/sh" in names and "bin/true" not in names


def test_restart_and_wait(busybox):
    container_id = busybox.ok("run", "-d", "--network", "none", "--name", "cycled", "busybox",
                              "sh", "-c", "trap 'exit 7' TERM; sleep 300 & wait").strip()
    engine = engine_of(busybox)
    first_pid = engine.get("cycled")["State"]["Pid"]
    restart(engine, engine.get("cycled"), timeout=10)
    record = engine.get("cycled")
    assert record["State"]["Running"] and record["State"]["Pid"] != first_pid

    codes = []
    waiter = threading.Thread(target=lambda: codes.append(wait(engine, container_id)))
    waiter.start()
    try:
        os.kill(engine.get("cycled")["State"]["Pid"], signal.SIGTERM)
    finally:
        waiter.join(30)
    assert codes == [7]
