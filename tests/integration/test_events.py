"""`berth events` against real containers, images and volumes: docker's event sequences and
shapes, --since/--until replay, a second process following live, filters, --format, rotation
of the journal, and a full disk that drops events without failing a command. The reference
is docker's (23+) sequence: a container's cleanup (network disconnect, volume unmount)
comes before its die event."""

import errno
import json
import os
import re
import select
import signal
import subprocess
import time

from conftest import wait_for, wchan

HEX64 = re.compile(r"^[0-9a-f]{64}$")
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(Z|[+-]\d\d:\d\d) (\w+) (\w+) (\S+)( \((.*)\))?$")
TRAP = 'trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done'


def past(b, *args: str) -> list[dict]:
    """Every event so far (docker's --since 0 --until <now>), as JSON messages."""
    until = f"{time.time():.9f}"
    out = b.ok("events", "--since", "0", "--until", until, "--format", "json", *args)
    return [json.loads(line) for line in out.splitlines()]


def actions(messages: list[dict]) -> list[str]:
    return [f"{m['Type']} {m['Action']}" for m in messages]


def wait_ready(b, name: str) -> None:
    wait_for(lambda: "ready" in b.ok("logs", name), what=f"{name} to set its trap")


def test_run_stop_rm_yields_dockers_sequence_and_shapes(busybox):
    container_id = busybox.ok("run", "-d", "--name", "web", "--label", "tier=front", "busybox",
                              "sh", "-c", TRAP).strip()
    wait_ready(busybox, "web")
    busybox.ok("stop", "web")
    busybox.ok("rm", "web")
    messages = [m for m in past(busybox) if m["Type"] != "image"]
    assert actions(messages) == ["container create", "network connect", "container start", "container kill",
                                 "network disconnect", "container die", "container stop", "container destroy"]
    by_action = {m["Action"]: m for m in messages}
    for action in ("create", "start", "kill", "die", "stop", "destroy"):
        m = by_action[action]
        assert list(m) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
        assert (m["status"], m["id"], m["from"], m["scope"]) == (action, container_id, "busybox", "local")
        assert m["Actor"]["ID"] == container_id
        assert m["time"] == m["timeNano"] // 1_000_000_000
        attributes = m["Actor"]["Attributes"]
        assert (attributes["image"], attributes["name"], attributes["tier"]) == ("busybox", "web", "front")
        assert list(attributes) == sorted(attributes)
    assert by_action["kill"]["Actor"]["Attributes"]["signal"] == "15"
    assert by_action["die"]["Actor"]["Attributes"]["exitCode"] == "0"
    assert by_action["die"]["Actor"]["Attributes"]["execDuration"].isdigit()
    connect = by_action["connect"]
    assert list(connect) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]  # no status/id/from
    assert connect["Actor"]["Attributes"] == {"container": container_id, "name": "bridge", "type": "bridge"}
    assert HEX64.match(connect["Actor"]["ID"])
    times = [m["timeNano"] for m in messages]
    assert times == sorted(times)


def test_stop_of_a_container_ignoring_term_kills_twice(busybox):
    busybox.ok("run", "-d", "--name", "stubborn", "busybox", "sleep", "100")  # pid 1 ignores SIGTERM
    busybox.ok("stop", "-t", "1", "stubborn")
    kills = [m for m in past(busybox, "--filter", "event=kill")]
    assert [m["Actor"]["Attributes"]["signal"] for m in kills] == ["15", "9"]
    die = past(busybox, "--filter", "event=die")
    assert die[0]["Actor"]["Attributes"]["exitCode"] == "137"


def test_run_rm_yields_create_start_die_destroy(busybox):
    ran = busybox("run", "--rm", "--network", "none", "--name", "once", "busybox", "sh", "-c", "exit 3")
    assert ran.returncode == 3, ran.stderr
    messages = past(busybox, "--filter", "container=once")
    assert actions(messages) == ["container create", "container start", "container die", "container destroy"]
    assert messages[2]["Actor"]["Attributes"]["exitCode"] == "3"
    network = past(busybox, "--filter", "type=network")
    assert actions(network) == ["network connect", "network disconnect"]
    assert network[0]["Actor"]["Attributes"]["name"] == "none" and network[0]["Actor"]["Attributes"]["type"] == "null"


def test_kill_pause_unpause_rename_and_rm_force(busybox):
    busybox.ok("run", "-d", "--name", "first", "busybox", "sh", "-c", TRAP)
    wait_ready(busybox, "first")
    busybox.ok("pause", "first")
    busybox.ok("unpause", "first")
    busybox.ok("rename", "first", "second")
    busybox.ok("kill", "-s", "USR1", "second")  # not its stop signal: it keeps running
    busybox.ok("rm", "-f", "second")
    messages = past(busybox, "--filter", "type=container")
    assert actions(messages) == ["container create", "container start", "container pause", "container unpause",
                                 "container rename", "container kill", "container kill", "container die",
                                 "container destroy"]
    rename = messages[4]["Actor"]["Attributes"]
    assert (rename["name"], rename["oldName"]) == ("second", "/first")
    assert messages[5]["Actor"]["Attributes"]["signal"] == "10"
    assert messages[6]["Actor"]["Attributes"]["signal"] == "9"
    assert messages[7]["Actor"]["Attributes"]["exitCode"] == "137"
    assert len(past(busybox, "--filter", "event=die")) == 1  # the supervisor did not report it again


def test_since_and_until_replay_a_window(busybox):
    busybox.ok("create", "--name", "before", "busybox", "true")
    middle = time.time()
    time.sleep(0.01)  # the next event's time must fall after `middle` (a clock tick, not a wait for work)
    busybox.ok("create", "--name", "after", "busybox", "true")
    end = time.time()
    out = busybox.ok("events", "--since", f"{middle:.9f}", "--until", f"{end:.9f}")
    lines = out.splitlines()
    assert len(lines) == 1, out
    match = LINE.match(lines[0])
    assert match, lines[0]
    assert match.group(2, 3) == ("container", "create")
    assert "name=after" in match.group(6) and "image=busybox" in match.group(6)
    out = busybox.ok("events", "--until", f"{middle:.9f}", "--filter", "type=container", "--format",
                     "{{.Actor.Attributes.name}}")
    assert out.splitlines() == ["before"]
    # RFC 3339 and durations, as docker's CLI reads them
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end + 1))
    out = busybox.ok("events", "--since", "10m", "--until", stamp, "--filter", "type=container", "--format",
                     "{{.Actor.Attributes.name}}")
    assert out.splitlines() == ["before", "after"]


def test_a_second_process_follows_events_live(busybox):
    follower = subprocess.Popen(busybox.cmd("events", "--filter", "type=container", "--format",
                                            "{{.Action}} {{.Actor.Attributes.name}}"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: follower.poll() is not None or any(w in wchan(follower.pid) for w in ("select", "poll")),
                 what="the follower to wait for events")
        assert follower.poll() is None, follower.stderr.read()
        busybox.ok("create", "--name", "live", "busybox", "true")
        busybox.ok("rm", "live")
        seen = b""
        deadline = time.monotonic() + 20
        while seen.count(b"\n") < 2 and time.monotonic() < deadline:
            ready, _, _ = select.select([follower.stdout], [], [], 0.5)
            if ready:
                seen += os.read(follower.stdout.fileno(), 4096)
        assert seen.decode().splitlines() == ["create live", "destroy live"]
        follower.send_signal(signal.SIGINT)  # Ctrl-C ends it quietly, like docker's
        assert follower.wait(timeout=20) == 0
        assert b"Traceback" not in follower.stderr.read()
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_until_in_the_future_follows_then_stops(busybox):
    since, until = time.time(), time.time() + 3  # --until alone would replay the past too (docker's rule)
    follower = subprocess.Popen(busybox.cmd("events", "--since", f"{since:.9f}", "--until", f"{until:.9f}",
                                            "--format", "{{.Action}}"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: follower.poll() is not None or any(w in wchan(follower.pid) for w in ("select", "poll")),
                 what="the follower to wait for events")
        busybox.ok("create", "--name", "soon", "busybox", "true")
        out, err = follower.communicate(timeout=30)
        assert follower.returncode == 0, err
        assert out.decode().splitlines() == ["create"]
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()


def test_filters(busybox):
    busybox.ok("create", "--name", "alpha", "--label", "team=a", "busybox", "true")
    busybox.ok("create", "--name", "beta", "--label", "team=b", "--label", "on", "busybox", "true")
    busybox.ok("rm", "alpha")

    def names(*filters: str) -> list[str]:
        args = [a for f in filters for a in ("--filter", f)]
        return [f"{m['Action']} {m['Actor']['Attributes'].get('name', '')}" for m in past(busybox, *args)
                if m["Type"] == "container"]

    assert names("container=alpha") == ["create alpha", "destroy alpha"]
    assert names("container=alpha", "container=beta") == ["create alpha", "create beta", "destroy alpha"]
    assert names("container=al") == ["create alpha", "destroy alpha"]  # a prefix, like docker's FuzzyMatch
    assert names("event=destroy") == ["destroy alpha"]
    assert names("label=team=b") == ["create beta"]
    assert names("label=team") == ["create alpha", "create beta", "destroy alpha"]
    assert names("label=on", "label=team=b") == ["create beta"]
    assert names("label=team=a", "event=create") == ["create alpha"]
    assert names("image=busybox", "event=create") == ["create alpha", "create beta"]
    assert names("image=busybox:latest", "event=create") == []  # docker's exact match on "busybox"
    assert names("image=other") == []
    assert [m["Type"] for m in past(busybox, "--filter", "type=image")] == ["image"] * 2  # fixture's import
    assert past(busybox, "--filter", "type=container", "--filter", "type=image") == past(busybox)
    assert past(busybox, "--filter", "container=alpha", "--filter", "type=image") == []


def test_format_json_template_and_bad_template(busybox):
    container_id = busybox.ok("create", "--name", "fmt", "busybox", "true").strip()
    until = f"{time.time():.9f}"
    out = busybox.ok("events", "--since", "0", "--until", until, "--filter", "type=container",
                     "--format", "{{.ID}} {{.Status}} {{.From}} {{.Scope}} {{.Actor.ID}} {{.Time}}")
    fields = out.split()
    assert fields[:5] == [container_id, "create", "busybox", "local", container_id] and fields[5].isdigit()
    out = busybox.ok("events", "--since", "0", "--until", until, "--filter", "type=container",
                     "--format", "{{json .Actor.Attributes}}")
    assert json.loads(out) == {"image": "busybox", "name": "fmt"}
    result = busybox("events", "--until", until, "--format", "{{.Nope}}")
    assert result.returncode == 64
    assert result.stderr.strip() == ('Error parsing format: template: :1:2: executing "" at <.Nope>: '
                                     "can't evaluate field Nope in type *events.Message")
    busybox.fails(1, "events", "--since", "10", "--until", "5",
                  says="`since` time (10) cannot be after `until` time (5)")
    busybox.fails(1, "events", "--since", "yesterday", says='failed to parse value as time or duration: "yesterday"')
    busybox.ok("system", "events", "--until", until)  # the management-command spelling


def test_image_events(busybox, tmp_path):
    image_id = busybox.ok("inspect", "--format", "{{.Id}}", "busybox").strip()
    start = f"{time.time():.9f}"
    busybox.ok("tag", "busybox", "mine:1")
    busybox.ok("save", "-o", str(tmp_path / "saved.tar"), "mine:1")
    busybox.ok("rmi", "mine:1")
    busybox.ok("load", "-i", str(tmp_path / "saved.tar"))
    container_id = busybox.ok("create", "busybox", "true").strip()
    committed = busybox.ok("commit", "-m", "note", container_id, "snap:2").strip()
    busybox.ok("rmi", "snap:2")
    messages = [m for m in past(busybox, "--since", start) if m["Action"] != "create"]
    assert [(m["Type"], m["Action"], m["Actor"]["ID"], m["Actor"]["Attributes"]["name"]) for m in messages] == [
        ("image", "tag", image_id, "mine:1"),
        ("image", "save", image_id, image_id),
        ("image", "untag", image_id, image_id),
        ("image", "load", image_id, image_id),
        ("image", "tag", committed, "snap:2"),
        ("container", "commit", container_id, messages[5]["Actor"]["Attributes"]["name"]),
        ("image", "untag", committed, committed),
        ("image", "delete", committed, committed),
    ]
    commit = messages[[m["Action"] for m in messages].index("commit")]["Actor"]["Attributes"]
    assert (commit["comment"], commit["imageID"], commit["imageRef"]) == ("note", committed, "snap:2")
    assert all(m["status"] == m["Action"] and m["id"] == m["Actor"]["ID"] and "from" not in m
               for m in messages if m["Type"] == "image")


def test_volume_events(busybox):
    busybox.ok("volume", "create", "data")
    container_id = busybox.ok("create", "--network", "none", "-v", "data:/data", "busybox", "true").strip()
    busybox.ok("start", "-a", container_id)
    busybox.ok("rm", container_id)
    busybox.ok("volume", "rm", "data")
    messages = past(busybox, "--filter", "type=volume")
    assert actions(messages) == ["volume create", "volume mount", "volume unmount", "volume destroy"]
    assert all(m["Actor"]["ID"] == "data" and "status" not in m for m in messages)
    assert messages[0]["Actor"]["Attributes"] == {"driver": "local"}
    assert messages[1]["Actor"]["Attributes"] == {"container": container_id, "destination": "/data",
                                                  "driver": "local", "propagation": "", "read/write": "true"}
    assert messages[2]["Actor"]["Attributes"] == {"container": container_id, "driver": "local"}
    assert actions(past(busybox, "--filter", "volume=data", "--filter", "type=volume")) == actions(messages)
    everything = actions(past(busybox, "--filter", "container=" + container_id))
    assert everything == ["container create", "container start", "container die", "container destroy"]


def test_rotation_keeps_since_working_across_the_boundary(busybox):
    """A journal near its bound (an old event of ours, then filler) rotates on the next
    events; --since still finds what is on both sides, and the journal stays bounded."""
    from berth.engine import events

    journal = os.path.join(busybox.root, "events", "journal")
    start = time.time()
    busybox.ok("create", "--name", "old", "busybox", "true")
    filler = events.message("daemon", "reload", "filler", {"name": "x" * 1000}, time.time_ns())
    line = (json.dumps(filler, separators=(",", ":")) + "\n").encode()
    with open(journal, "ab") as f:
        f.write(line * ((events.LIMIT - os.path.getsize(journal)) // len(line) + 1))  # just past the bound
    for i in range(3):
        busybox.ok("create", "--name", f"new{i}", "busybox", "true")
    assert os.path.exists(journal + ".1"), "the journal did not rotate"
    assert os.path.getsize(journal) < events.LIMIT
    out = busybox.ok("events", "--since", f"{start:.9f}", "--until", f"{time.time():.9f}", "--filter",
                     "type=container", "--format", "{{.Actor.Attributes.name}}")
    assert out.splitlines() == ["old", "new0", "new1", "new2"]
    assert sorted(os.listdir(os.path.dirname(journal))) == ["journal", "journal.1", "lock"]
    assert os.stat(journal).st_mode & 0o777 == 0o600
    assert os.stat(os.path.dirname(journal)).st_mode & 0o777 == 0o700


def test_a_full_disk_drops_events_but_never_fails_a_command(busybox):
    """The journal's directory on a tiny tmpfs filled to the last byte: every command still
    works, the events are dropped (or torn and skipped), and `events` still reads."""
    events_dir = os.path.join(busybox.root, "events")
    os.makedirs(events_dir, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", events_dir], check=True)
    try:
        fd = os.open(os.path.join(events_dir, "ballast"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError as err:
            assert err.errno == errno.ENOSPC
        finally:
            os.close(fd)
        busybox.ok("run", "--rm", "--network", "none", "busybox", "true")
        container_id = busybox.ok("create", "--name", "full", "busybox", "true").strip()
        busybox.ok("rm", container_id)
        busybox.ok("tag", "busybox", "full:1")
        busybox.ok("events", "--since", "0", "--until", f"{time.time():.9f}")
    finally:
        subprocess.run(["umount", events_dir], check=True)
