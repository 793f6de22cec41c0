"""The events journal (berth.engine.events) on a real directory: docker's message shapes,
attribute precedence, the line bound, emitting that never fails, docker's filter rules,
rotation (also with concurrent writers and a live follower), and the CLI's printing."""

import json
import os
import threading
import time

import pytest

from berth import journal as event_journal
from berth.cli import events as cli
from berth.engine import events
from berth.gotemplate import parse
from berth.paths import Paths

CID = "c" * 64


class FakeEngine:
    """Only what events.watch reads from an engine: its paths."""

    def __init__(self, root: str):
        self.paths = Paths(root, os.path.join(root, "run"))


def record(**over) -> dict:
    rec = {"Id": CID, "Name": "/web", "Config": {"Image": "busybox", "Labels": {"tier": "front"}},
           "State": {"StartedAt": "0001-01-01T00:00:00Z"}, "HostConfig": {"NetworkMode": "bridge"},
           "NetworkSettings": {"Networks": {"bridge": {"NetworkID": "n" * 64}}}, "Mounts": []}
    rec.update(over)
    return rec


def journal(root: str) -> list[dict]:
    with open(os.path.join(root, "events", "journal"), "rb") as f:
        return [json.loads(line) for line in f]


def replay(root: str, filters: dict | None = None) -> list[dict]:
    return list(events.watch(FakeEngine(root), 0, time.time_ns(), filters))


def test_container_event_has_dockers_shape_and_precedence(tmp_path):
    root = str(tmp_path)
    events.container(root, record(Config={"Image": "busybox", "Labels": {"name": "label", "exitCode": "x"}}),
                     "die", {"exitCode": "3", "image": "extra"})
    (msg,) = journal(root)
    assert list(msg) == ["status", "id", "from", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert (msg["status"], msg["id"], msg["from"], msg["Type"], msg["Action"]) == ("die", CID, "busybox",
                                                                                    "container", "die")
    # docker: extra attributes, then labels over them, then image and name over both
    assert msg["Actor"] == {"ID": CID, "Attributes": {"exitCode": "x", "image": "busybox", "name": "web"}}
    assert msg["scope"] == "local" and msg["time"] == msg["timeNano"] // 1_000_000_000
    assert abs(msg["timeNano"] - time.time_ns()) < 60 * 1_000_000_000
    assert os.stat(os.path.join(root, "events", "journal")).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(root, "events")).st_mode & 0o777 == 0o700


def test_other_types_have_no_deprecated_fields_and_images_no_from(tmp_path):
    root = str(tmp_path)
    events.volume(root, "create", "data")
    events.image(root, "tag", "sha256:" + "a" * 64, "docker.io/library/busybox:1", {"l": "v"})
    events.image(root, "delete", "sha256:" + "a" * 64)
    volume, tag, delete = journal(root)
    assert list(volume) == ["Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert volume["Actor"] == {"ID": "data", "Attributes": {"driver": "local"}}
    assert list(tag) == ["status", "id", "Type", "Action", "Actor", "scope", "time", "timeNano"]
    assert tag["Actor"]["Attributes"] == {"l": "v", "name": "busybox:1"}  # the familiar reference
    assert delete["Actor"]["Attributes"] == {"name": "sha256:" + "a" * 64}  # docker names it by its ID


def test_start_and_die_report_network_and_volumes_as_docker(tmp_path):
    root = str(tmp_path)
    mounts = [{"Type": "volume", "Name": "data", "Destination": "/d", "Driver": "local", "RW": False,
               "Propagation": ""}, {"Type": "bind", "Source": "/tmp", "Destination": "/h"}]
    started = time.time_ns() - 5_000_000_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started // 10**9)) + ".5Z"
    events.started(root, record(Mounts=mounts))
    events.died(root, record(Mounts=mounts, State={"StartedAt": stamp}), 137)
    events.started(root, record(HostConfig={"NetworkMode": "container:" + "d" * 64}))
    got = [(m["Type"], m["Action"], m["Actor"]["ID"], m["Actor"]["Attributes"]) for m in journal(root)]
    network = {"container": CID, "name": "bridge", "type": "bridge"}
    assert got[:6] == [
        ("network", "connect", "n" * 64, network),
        ("volume", "mount", "data", {"container": CID, "destination": "/d", "driver": "local", "propagation": "",
                                     "read/write": "false"}),
        ("container", "start", CID, {"image": "busybox", "name": "web", "tier": "front"}),
        ("network", "disconnect", "n" * 64, network),
        ("volume", "unmount", "data", {"container": CID, "driver": "local"}),
        ("container", "die", CID, {"execDuration": got[5][3]["execDuration"], "exitCode": "137",
                                   "image": "busybox", "name": "web", "tier": "front"}),
    ]
    assert 3 <= int(got[5][3]["execDuration"]) <= 60
    assert [g[1] for g in got[6:]] == ["start"]  # a container on another's network: no network event


def test_a_huge_label_set_keeps_the_event_without_its_labels(tmp_path):
    root = str(tmp_path)
    labels = {f"label{i}": "v" * 100 for i in range(100)}
    events.container(root, record(Config={"Image": "busybox", "Labels": labels}), "create")
    with open(os.path.join(root, "events", "journal"), "rb") as f:
        data = f.read()
    assert len(data) <= events.MAX_LINE < 4096  # one write below PIPE_BUF
    assert json.loads(data)["Actor"]["Attributes"] == {"image": "busybox", "name": "web"}


def test_emitting_never_raises(tmp_path):
    root = str(tmp_path)
    os.makedirs(os.path.join(root, "events", "journal"))  # the journal is a directory: EISDIR
    events.container(root, record(), "create")
    (tmp_path / "file").write_text("")
    events.volume(str(tmp_path / "file"), "create", "v")  # the root is a file: ENOTDIR
    events.container(root, {"Id": CID}, "create")  # a record without the fields it reads
    assert os.listdir(os.path.join(root, "events", "journal")) == []


def test_torn_lines_are_skipped(tmp_path):
    root = str(tmp_path)
    events.volume(root, "create", "one")
    with open(os.path.join(root, "events", "journal"), "ab") as f:
        f.write(b'{"Type":"volume","Act\n')  # what a full disk leaves
    events.volume(root, "create", "two")
    assert [m["Actor"]["ID"] for m in replay(root)] == ["one", "two"]


MESSAGES = [
    events.message("container", "create", CID, {"image": "busybox", "name": "web", "tier": "front"}, 1),
    events.message("container", "exec_start: sh", CID, {"image": "busybox:1", "name": "web"}, 2),
    events.message("image", "tag", "sha256:" + "a" * 64, {"name": "busybox:1"}, 3),
    events.message("volume", "create", "data", {"driver": "local"}, 4),
    events.message("network", "connect", "n" * 64, {"container": CID, "name": "bridge", "type": "bridge"}, 5),
]


def kept(*values: str) -> list[int]:
    filters = events.parse_filters(list(values))
    return [m["timeNano"] for m in MESSAGES if events.matches(m, filters)]


def test_filters_follow_dockers_rules():
    assert kept() == [1, 2, 3, 4, 5]
    assert kept("type=container") == [1, 2]
    assert kept("type=volume", "type=network") == [4, 5]  # one key's values OR'ed
    assert kept("type=container", "event=create") == [1]  # keys AND'ed
    assert kept("event=exec_start") == [2]  # docker's fuzzy match for exec_start/create, health_status
    assert kept("event=exec") == []
    assert kept("container=web") == [1, 2]  # by name, and a prefix of the ID, for every type
    assert kept("container=ccc") == [1, 2]
    assert kept("container=bridge") == [5]  # the network's own name: docker's filter looks at any event
    assert kept("label=tier") == [1] and kept("label=tier=front") == [1] and kept("label=tier=back") == []
    assert kept("label=tier", "label=name=web") == [1]  # every label must match
    assert kept("image=busybox") == [1, 2, 3]  # the image attribute or name, its tag stripped
    assert kept("image=busybox:1") == [2, 3]
    assert kept("image=sha256:" + "a" * 64) == [3]
    assert kept("volume=data") == [4] and kept("network=bridge") == [5] and kept("network=nnn") == [5]
    assert kept("scope=local") == [1, 2, 3, 4, 5] and kept("scope=swarm") == []
    assert kept("Type= container ") == [1, 2]  # key lowercased, both trimmed, as docker's CLI does
    assert kept("bogus=1") == [1, 2, 3, 4, 5]  # docker ignores keys it does not know
    with pytest.raises(Exception, match="bad format of filter"):
        events.parse_filters(["type"])


def fill_past_limit(root: str, tag: str, label_size: int = 1500) -> list[str]:
    """Emit volume events with big labels until the journal rotated once; their IDs."""
    ids = []
    while not os.path.exists(os.path.join(root, "events", events.PREVIOUS)):
        ids.append(f"{tag}{len(ids)}")
        events.emit(root, "volume", "create", ids[-1], {"driver": "local"}, {"pad": "x" * label_size})
    return ids


def test_rotation_keeps_one_previous_file_and_since_reads_across_it(tmp_path):
    root = str(tmp_path)
    first = time.time_ns()
    ids = fill_past_limit(root, "a")
    after = [f"b{i}" for i in range(5)]
    for name in after:
        events.volume(root, "create", name)
    directory = os.path.join(root, "events")
    assert os.path.getsize(os.path.join(directory, events.PREVIOUS)) > events.LIMIT
    assert os.path.getsize(os.path.join(directory, events.JOURNAL)) < events.LIMIT
    assert [m["Actor"]["ID"] for m in events.watch(FakeEngine(root), first, time.time_ns())] == ids + after
    middle = replay(root)[len(ids) - 3]["timeNano"]  # three events before the boundary
    assert [m["Actor"]["ID"] for m in events.watch(FakeEngine(root), middle, time.time_ns())] == ids[-3:] + after
    fill_past_limit(root, "c")  # a second rotation drops the oldest file: the journal stays bounded
    assert sorted(os.listdir(directory)) == ["journal", "journal.1", "lock"]
    assert sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)) < 3 * events.LIMIT


def test_concurrent_writers_across_a_rotation_lose_and_tear_nothing(tmp_path):
    """Four processes append at once while the journal rotates: every event is there once,
    every line whole (one O_APPEND write each; only the rotation takes a lock)."""
    root = str(tmp_path)
    writers, each = 4, 200  # ~1.3 MiB of events: one rotation, not two
    children = []
    for w in range(writers):
        pid = os.fork()
        if pid == 0:
            try:
                for i in range(each):
                    events.emit(root, "volume", "create", f"w{w}-{i}", {"driver": "local"}, {"pad": "x" * 1600})
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitpid(pid, 0)[1] == 0
    directory = os.path.join(root, "events")
    lines = []
    for name in (events.PREVIOUS, events.JOURNAL):
        with open(os.path.join(directory, name), "rb") as f:
            lines += f.read().splitlines()
    assert os.path.exists(os.path.join(directory, events.PREVIOUS))
    ids = [json.loads(line)["Actor"]["ID"] for line in lines]  # a torn line fails to parse here
    assert sorted(ids) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(each))


def test_a_writer_that_saw_the_old_file_full_does_not_rotate_again(tmp_path):
    """The writer that appended to the journal just before another rotated it also finds it
    full; it must leave the fresh journal alone, or it would replace the full previous file
    (whose events would be lost) with an almost empty one."""
    root = str(tmp_path)
    directory = os.path.join(root, "events")
    events.volume(root, "create", "first")
    stale = os.open(os.path.join(directory, events.JOURNAL), os.O_RDONLY)  # a writer between write and check
    try:
        fill_past_limit(root, "a")
        events.volume(root, "create", "fresh")
        full, fresh = (os.stat(os.path.join(directory, n)).st_ino for n in (events.PREVIOUS, events.JOURNAL))
        assert os.fstat(stale).st_ino == full
        event_journal._rotate(directory, stale)
        assert os.stat(os.path.join(directory, events.PREVIOUS)).st_ino == full
        assert os.stat(os.path.join(directory, events.JOURNAL)).st_ino == fresh
    finally:
        os.close(stale)


def wchan_of_thread(native_id: int) -> str:
    try:
        with open(f"/proc/self/task/{native_id}/wchan") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def test_a_follower_sees_new_events_across_a_rotation(tmp_path):
    root = str(tmp_path)
    events.volume(root, "create", "old")  # before the follower: not shown without --since
    seen, ids = [], []
    done = threading.Event()

    def follow():
        stream = events.watch(FakeEngine(root), None, None, {"type": ["volume"]})
        try:
            for msg in stream:
                seen.append(msg["Actor"]["ID"])
                if seen[-1] == "last":
                    break
        finally:
            stream.close()
            done.set()

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not any(w in wchan_of_thread(thread.native_id) for w in ("select", "poll")):
        assert time.monotonic() < deadline, "the follower never waited"
        time.sleep(0.005)
    ids = fill_past_limit(root, "n")  # appends, one rotation, appends to the new file
    events.volume(root, "create", "last")
    assert done.wait(20), f"the follower saw {len(seen)} of {len(ids) + 1} events"
    assert seen == ids + ["last"]


def test_cli_prints_dockers_default_line_in_local_time(monkeypatch):
    msg = events.message("container", "die", CID, {"name": "web", "exitCode": "0", "image": "busybox"},
                         1_796_616_591_000_001_234)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert cli.pretty(msg) == (f"2026-12-07T04:09:51.000001234Z container die {CID} "
                               "(exitCode=0, image=busybox, name=web)\n")
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert cli.pretty(msg).startswith("2026-12-07T09:39:51.000001234+05:30 container die")
    finally:
        monkeypatch.setenv("TZ", "UTC")
        time.tzset()
    volume = events.message("volume", "create", "data", {}, 1_796_616_591_000_000_000)
    assert cli.pretty(volume) == "2026-12-07T04:09:51.000000000Z volume create data\n"


def test_cli_templates_see_go_field_names_and_json_sees_dockers():
    msg = events.message("container", "start", CID, {"image": "busybox", "name": "web"}, 1_796_616_591_000_000_007)
    value = cli.message_value(msg)
    assert parse("{{json .}}").execute(value) == json.dumps(msg, separators=(",", ":"))
    assert parse("{{.Status}} {{.ID}} {{.From}} {{.Type}} {{.Action}} {{.Actor.ID}} {{.Scope}} {{.Time}} "
                 "{{.TimeNano}} {{.Actor.Attributes.name}}").execute(value) == (
        f"start {CID} busybox container start {CID} local 1796616591 1796616591000000007 web")
    network = events.message("network", "connect", "n" * 64, {"name": "bridge"}, 1_796_616_591_000_000_008)
    assert parse("{{json .}}").execute(cli.message_value(network)) == json.dumps(network, separators=(",", ":"))
    with pytest.raises(Exception, match="can't evaluate field status in type events.Message"):
        parse("{{.status}}").execute(value)


def test_a_template_fills_in_the_line_emit_would_write():
    """A long-lived writer's Template (a supervisor's health probe events) gives, byte for
    byte, the line emit writes for the same event: docker's shape, attributes sorted, the
    changing fields (any JSON string) and the time put in."""
    attributes = {"name": "web", "image": "busybox", "zeta": "last", "a": "first"}
    template = event_journal.Template("container", "exec_die", CID, attributes, ("execID", "exitCode"))
    when = 1_765_000_000_123_456_789
    values = ("e" * 64, 'odd "quoted" \\ value')
    expected = event_journal._line("container", "exec_die", CID,
                                   {"execID": values[0], "exitCode": values[1], **attributes}, when)
    assert template.fill(values, when) == expected
    assert json.loads(expected)["Actor"]["Attributes"]["exitCode"] == values[1]


def test_an_appender_follows_a_rotation_by_another_writer(tmp_path):
    """An Appender keeps the journal open; once another writer rotated it, the next append
    still lands in journal.1 (where readers look), and the one after in the new journal."""
    root = str(tmp_path)
    appender = event_journal.Appender(root)
    line = event_journal._line("container", "start", CID, {"name": "web"}, 1)
    appender.append(line)
    fill_past_limit(root, "n")  # emit rotates: journal.1 is the file our fd is on
    before = os.path.getsize(os.path.join(root, "events", event_journal.PREVIOUS))
    appender.append(line)
    assert os.path.getsize(os.path.join(root, "events", event_journal.PREVIOUS)) == before + len(line)
    appender.append(line + line)
    with open(os.path.join(root, "events", event_journal.JOURNAL), "rb") as f:
        assert f.read().endswith(line + line)
    appender.close()
