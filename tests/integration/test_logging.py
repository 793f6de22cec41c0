"""Logging drivers and rotation as docker's: --log-driver json-file|local|none, --log-opt
max-size/max-file/compress (docker's file names: <id>-json.log, .1, .2... or .1.gz), labels,
env, tag in each entry's "attrs", daemon.json's log-driver/log-opts, docker's errors for bad
options; `logs` reads across rotated files and follows through a rotation; a container
writing far more than max-size * max-file never holds more than that on disk."""

import gzip
import json
import os
import subprocess
import threading

import pytest

from conftest import wait_for

LINES = "i=0; while [ $i -lt {n} ]; do echo line $i; i=$((i+1)); done"


def inspect(b, name: str, template: str) -> str:
    return b.ok("inspect", "--format", template, name).strip()


def log_dir(b, name: str) -> str:
    return os.path.join(b.root, "containers", inspect(b, name, "{{.Id}}"))


def log_files(b, name: str) -> dict:
    """{file name: size} of the container's log files."""
    directory = log_dir(b, name)
    return {entry.name: entry.stat().st_size for entry in os.scandir(directory) if "-json.log" in entry.name}


def numbers(text: str) -> list[int]:
    return [int(line.split()[1]) for line in text.splitlines()]


def assert_last_lines(text: str, total: int) -> list[int]:
    """`text` is the last lines of "line 0".."line {total-1}", none missing, none twice."""
    got = numbers(text)
    assert got and got == list(range(total - len(got), total)), got[:5]
    return got


def test_rotation_keeps_max_file_files_of_max_size_named_as_docker(busybox):
    busybox.ok("run", "--name", "rot", "--log-opt", "max-size=10k", "--log-opt", "max-file=3",
               "busybox", "sh", "-c", LINES.format(n=2000))
    files = log_files(busybox, "rot")
    container_id = inspect(busybox, "rot", "{{.Id}}")
    base = f"{container_id}-json.log"
    assert sorted(files) == [base, base + ".1", base + ".2"]
    entry = len(json.dumps({"log": "line 1999\n", "stream": "stdout", "time": "2026-01-01T00:00:00.000000000Z"}))
    for name in (base + ".1", base + ".2"):  # rotated once full: at most one entry past max-size
        assert 10_000 <= files[name] <= 10_000 + entry + 1, files
    assert 0 < files[base] <= 10_000 + entry + 1
    with open(os.path.join(log_dir(busybox, "rot"), base + ".2")) as f:
        first = json.loads(f.readline())["log"]
    got = assert_last_lines(busybox.ok("logs", "rot"), 2000)
    assert got[0] == int(first.split()[1])  # from the oldest file kept, to the end
    tail = busybox.ok("logs", "--tail", "300", "rot")  # more than the current file holds
    assert numbers(tail) == list(range(1700, 2000))
    assert busybox.ok("logs", "--tail", "0", "rot") == ""


def test_compress_gzips_rotated_files_and_logs_reads_them(busybox):
    busybox.ok("run", "--name", "gz", "--log-opt", "max-size=10k", "--log-opt", "max-file=4", "--log-opt",
               "compress=true", "busybox", "sh", "-c", LINES.format(n=3000))
    container_id = inspect(busybox, "gz", "{{.Id}}")
    base = f"{container_id}-json.log"
    directory = log_dir(busybox, "gz")
    wait_for(lambda: sorted(log_files(busybox, "gz")) == [base, base + ".1.gz", base + ".2.gz", base + ".3.gz"],
             what="the last rotated file to be compressed")
    lines_in = {}
    for name in (base + ".1.gz", base + ".2.gz", base + ".3.gz"):
        with gzip.open(os.path.join(directory, name), "rt") as f:
            entries = [json.loads(line) for line in f]
        assert sum(len(json.dumps(e, separators=(",", ":"))) + 1 for e in entries) >= 10_000
        lines_in[name] = [int(e["log"].split()[1]) for e in entries]
    assert lines_in[base + ".3.gz"][-1] + 1 == lines_in[base + ".2.gz"][0]
    assert lines_in[base + ".2.gz"][-1] + 1 == lines_in[base + ".1.gz"][0]
    got = assert_last_lines(busybox.ok("logs", "gz"), 3000)
    assert got[0] == lines_in[base + ".3.gz"][0]
    middle = lines_in[base + ".2.gz"][5]
    assert numbers(busybox.ok("logs", "--tail", str(3000 - middle), "gz"))[0] == middle
    stamped = busybox.ok("logs", "--timestamps", "gz").splitlines()
    assert len(stamped) == len(got) and stamped[0].endswith(f"line {got[0]}")
    since = stamped[len(stamped) // 2].split()[0]
    assert numbers(busybox.ok("logs", "--since", since, "gz"))[0] <= got[len(got) // 2]
    assert numbers(busybox.ok("logs", "--until", since, "gz"))[-1] >= got[len(got) // 2]


def test_max_file_alone_is_accepted_and_never_rotates_like_docker(busybox):
    # dockerd 20.10 and 28 accept max-file without max-size: there is nothing to rotate.
    busybox.ok("run", "--name", "nosize", "--log-opt", "max-file=3", "busybox", "sh", "-c", LINES.format(n=500))
    assert list(log_files(busybox, "nosize")) == [inspect(busybox, "nosize", "{{.Id}}") + "-json.log"]
    assert_last_lines(busybox.ok("logs", "nosize"), 500)


def test_max_size_alone_keeps_one_file_emptied_when_full(busybox):
    busybox.ok("run", "--name", "one", "--log-opt", "max-size=5k", "busybox", "sh", "-c", LINES.format(n=1000))
    (size,) = log_files(busybox, "one").values()
    assert size <= 5_200
    assert_last_lines(busybox.ok("logs", "one"), 1000)


def test_none_keeps_no_log_and_logs_says_so(busybox):
    assert busybox.ok("run", "--name", "quiet", "--log-driver", "none", "busybox", "echo", "shown") == "shown\n"
    assert inspect(busybox, "quiet", "{{.HostConfig.LogConfig.Type}} [{{.LogPath}}]") == "none []"
    assert log_files(busybox, "quiet") == {}
    busybox.fails(1, "logs", "quiet", says="configured logging driver does not support reading")
    busybox.fails(1, "logs", "-f", "quiet", says="configured logging driver does not support reading")


def test_local_driver_logs_work_with_dockers_shape(busybox):
    busybox.ok("run", "--name", "loc", "--log-driver", "local", "busybox", "sh", "-c", "echo out; echo err >&2")
    assert inspect(busybox, "loc", "{{json .HostConfig.LogConfig}} [{{.LogPath}}]") == \
        '{"Type":"local","Config":{}} []'  # docker 28 on dockerd prints exactly this
    assert os.path.isfile(os.path.join(log_dir(busybox, "loc"), "local-logs", "container.log"))
    result = busybox("logs", "loc")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")


def test_local_driver_rotates_with_its_options(busybox):
    busybox.ok("run", "--name", "locrot", "--log-driver", "local", "--log-opt", "max-size=5k", "--log-opt",
               "max-file=2", "--log-opt", "compress=false", "busybox", "sh", "-c", LINES.format(n=1000))
    assert sorted(os.listdir(os.path.join(log_dir(busybox, "locrot"), "local-logs"))) == \
        ["container.log", "container.log.1"]
    assert_last_lines(busybox.ok("logs", "locrot"), 1000)


@pytest.mark.parametrize("args, says", [
    (["--log-opt", "max-size=abc"], "failed to initialize logging driver: invalid size: 'abc'"),
    (["--log-opt", "max-size=0"], "failed to initialize logging driver: max-size must be a positive number"),
    (["--log-opt", "max-size=-1"], "failed to initialize logging driver: invalid size: '-1'"),
    (["--log-opt", "max-size=1m", "--log-opt", "max-file=0"], "max-file cannot be less than 1"),
    (["--log-opt", "max-size=1m", "--log-opt", "max-file=x"], 'strconv.Atoi: parsing "x": invalid syntax'),
    (["--log-opt", "compress=true"],
     "compress cannot be true when max-file is less than 2 or max-size is not set"),
    (["--log-opt", "max-size=1m", "--log-opt", "max-file=2", "--log-opt", "compress=maybe"],
     'strconv.ParseBool: parsing "maybe": invalid syntax'),
    (["--log-opt", "foo=bar"], "unknown log opt 'foo' for json-file log driver"),
    (["--log-driver", "local", "--log-opt", "foo=1"], "unknown log opt 'foo' for log driver local"),
    (["--log-driver", "local", "--log-opt", "max-file=1"], "compression cannot be enabled when max file count is 1"),
    (["--log-driver", "none", "--log-opt", "max-size=1m"], "invalid logging opts for driver none"),
    (["--log-driver", "bogus"], 'error looking up logging plugin bogus: plugin "bogus" not found'),
    (["--log-driver", "gelf"], "log driver gelf is not supported by berth"),
    (["--log-opt", "mode=bad"], "logger: logging mode not supported: bad"),
    (["--log-opt", "max-buffer-size=1m"], "max-buffer-size option is only supported with 'mode=non-blocking'"),
    (["--log-opt", "tag={{.Bogus}}"], "can't evaluate field Bogus in type *logger.Info"),
    (["--log-opt", "tag={{.Name"], "template: log-tag:1: unclosed action"),
    (["--log-opt", "env-regex=["], "failed to initialize logging driver: error parsing regexp"),
])
def test_bad_log_options_are_refused_like_docker_and_create_nothing(busybox, args, says):
    for command in ("create", "run"):
        err = busybox.fails(125, command, *args, "busybox", "true", says=says)
        assert len(err.strip().splitlines()) == 1, err
    assert busybox.ok("ps", "-aq") == ""


@pytest.mark.parametrize("driver, host_has, says", [
    ("journald", "/run/systemd/journal/socket", "journald is not enabled on this host"),
    ("syslog", "/dev/log", "Unix syslog delivery error"),  # without a syslog-address: the host's
])
def test_journald_and_the_hosts_syslog_are_refused_in_one_line_where_absent(busybox, driver, host_has, says):
    if os.path.exists(host_has):  # a host with a journal or a syslog daemon
        if driver == "syslog":
            busybox.ok("run", "--rm", "--log-driver", driver, "busybox", "true")
            return
        says = f"log driver {driver} is not supported by berth"
    busybox.fails(125, "run", "--log-driver", driver, "busybox", "true", says=says)
    assert busybox.ok("ps", "-aq") == ""


def test_labels_env_and_tag_are_the_entries_attrs(busybox):
    busybox.ok("run", "--name", "tagged", "-l", "app=web", "-l", "tier=front", "-l", "other=x", "-e", "REGION=eu",
               "-e", "ZONE=a", "--log-opt", "labels=app,missing", "--log-opt", "env=REGION", "--log-opt",
               "env-regex=^ZO", "--log-opt", "tag={{.Name}}/{{.ImageName}}/{{.ID}}", "busybox", "echo", "hello")
    container_id = inspect(busybox, "tagged", "{{.Id}}")
    with open(os.path.join(log_dir(busybox, "tagged"), f"{container_id}-json.log")) as f:
        raw = f.readline()
    assert list(json.loads(raw)) == ["log", "stream", "attrs", "time"]  # docker's order
    attrs = {"app": "web", "REGION": "eu", "ZONE": "a", "tag": f"tagged/busybox/{container_id[:12]}"}
    assert json.loads(raw)["attrs"] == attrs
    details = busybox.ok("logs", "--details", "tagged")
    assert details == f"REGION=eu,ZONE=a,app=web,tag=tagged%2Fbusybox%2F{container_id[:12]} hello\n"


def test_daemon_json_defaults_apply_to_containers_of_that_driver(busybox):
    busybox.configure(**{"log-driver": "json-file", "log-opts": {"max-size": "5k", "max-file": "2"}})
    busybox.ok("run", "--name", "dflt", "busybox", "sh", "-c", LINES.format(n=500))
    assert json.loads(inspect(busybox, "dflt", "{{json .HostConfig.LogConfig}}")) == \
        {"Type": "json-file", "Config": {"max-size": "5k", "max-file": "2"}}
    assert len(log_files(busybox, "dflt")) == 2
    busybox.ok("create", "--name", "own", "--log-opt", "max-size=1m", "busybox", "true")
    assert json.loads(inspect(busybox, "own", "{{json .HostConfig.LogConfig}}"))["Config"] == \
        {"max-size": "1m", "max-file": "2"}
    busybox.ok("create", "--name", "other", "--log-driver", "local", "busybox", "true")
    assert json.loads(inspect(busybox, "other", "{{json .HostConfig.LogConfig}}")) == {"Type": "local", "Config": {}}
    busybox.configure(**{"log-driver": "none"})
    busybox.ok("run", "--name", "silent", "busybox", "true")
    assert inspect(busybox, "silent", "{{.HostConfig.LogConfig.Type}}") == "none"
    busybox.configure(**{"log-driver": "bogus"})
    busybox.fails(125, "create", "busybox", "true", says='plugin "bogus" not found')
    busybox.configure(**{"log-opts": {"max-size": 5}})
    busybox.fails(125, "create", "busybox", "true", says="log-opts")


@pytest.mark.parametrize("compress", ["false", "true"])
def test_follow_survives_rotations(busybox, compress):
    container_id = busybox.ok("run", "-d", "--name", "follow", "--log-opt", "max-size=2k", "--log-opt",
                              "max-file=5", "--log-opt", f"compress={compress}", "busybox", "sh", "-c",
                              "sleep 0.3; i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.005; done"
                              ).strip()
    follower = subprocess.Popen(busybox.cmd("logs", "-f", "follow"), stdout=subprocess.PIPE, text=True)
    out, _ = follower.communicate(timeout=60)
    assert numbers(out) == list(range(300))
    files = log_files(busybox, "follow")
    assert len(files) == 5, "the log did not rotate as often as the test needs"
    assert (compress == "true") == (f"{container_id}-json.log.1.gz" in files), files


def test_a_container_writing_200mb_never_holds_more_than_max_size_times_max_file(busybox):
    # The 1 GB with max-size=10m max-file=3, scaled down: 200 MB through 1 MB files.
    busybox.ok("run", "-d", "--name", "flood", "--log-opt", "max-size=1m", "--log-opt", "max-file=3", "busybox",
               "sh", "-c", "head -c 200000000 /dev/zero | tr '\\0' x; echo; echo done")
    directory = log_dir(busybox, "flood")
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                used = sum(e.stat().st_blocks * 512 for e in os.scandir(directory) if "-json.log" in e.name)
            except FileNotFoundError:  # a file rotated away between listing and stat
                continue
            peak[0] = max(peak[0], used)
            stop.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        wait_for(lambda: inspect(busybox, "flood", "{{.State.Status}}") == "exited", timeout=300,
                 what="200 MB of output")
    finally:
        stop.set()
        sampler.join()
    entry = 16 * 1024 + 200  # one partial entry of 16 KiB may pass max-size
    assert 0 < peak[0] <= 3 * (1_000_000 + entry) + 3 * 4096, peak[0]
    assert busybox.ok("logs", "--tail", "1", "flood") == "done\n"
    assert len(log_files(busybox, "flood")) == 3


def test_rotation_on_a_full_disk_drops_lines_and_goes_on(tmp_path):
    """Issue 13's rule holds with rotation: a write that fails loses lines, never the writer;
    once the disk has room again, the loss is told and rotation goes on as before."""
    from berth.monitor.lean import open_writer

    disk = str(tmp_path / "disk")
    os.mkdir(disk)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "berth-test-logging", disk], check=True)
    try:
        filler = os.path.join(disk, "filler")
        with open(filler, "wb") as f:
            f.write(b"x" * 40 * 1024)
        path = os.path.join(disk, "c-json.log")
        writer = open_writer(path, max_size=10_000, max_files=3)
        for i in range(1000):  # ~50 kB: the disk fills on the way
            writer.write("stdout", f"line {i}\n".encode())
        assert writer.lost
        os.unlink(filler)
        for i in range(1000, 2000):
            writer.write("stdout", f"line {i}\n".encode())
        writer.close()
        assert sorted(os.listdir(disk)) == ["c-json.log", "c-json.log.1", "c-json.log.2"]
        entries = []
        for name in ("c-json.log.2", "c-json.log.1", "c-json.log"):
            with open(os.path.join(disk, name)) as f:
                for line in f:
                    try:
                        entries.append(json.loads(line))
                    except ValueError:  # torn by a failed write: readers skip it
                        pass
        assert entries[-1]["log"] == "line 1999\n"
        assert all(os.path.getsize(os.path.join(disk, n)) < 10_100 for n in os.listdir(disk))
    finally:
        subprocess.run(["umount", disk], check=False)
