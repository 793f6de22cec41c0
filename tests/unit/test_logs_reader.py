"""Reading and following json-file logs (engine/logs.py) and docker's --since/--until
parsing (cli/logs.py), on log files written here."""

import os
import threading
import time

import pytest

from berth.engine.logs import decode_line, follow_logs, format_timestamp, parse_tail, read_logs
from berth.gotime import get_timestamp, go_parse_time, parse_unix_timestamp
from berth.monitor.logfile import LogWriter
from berth.units import format_rfc3339_nano_ns
from conftest import wait_for

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


def line(text: str, stream: str = "stdout", time_ns: int = T0, attrs: dict | None = None) -> bytes:
    from berth import fastjson

    obj = {"log": text, "stream": stream, "time": format_rfc3339_nano_ns(time_ns)}
    if attrs:
        obj["attrs"] = attrs
    return (fastjson.dumps(obj) + "\n").encode()


@pytest.fixture
def log(tmp_path):
    path = str(tmp_path / "c-json.log")

    def write(*lines: bytes) -> None:
        with open(path, "ab") as f:
            f.write(b"".join(lines))

    write.path = path
    write.record = {"Id": "c", "LogPath": path, "State": {"Running": False, "Restarting": False, "Pid": 0}}
    return write


def texts(entries) -> list[str]:
    return [text for _, _, text in entries]


# -- read_logs ---------------------------------------------------------------------------------

def test_reads_what_logwriter_wrote_in_order_with_streams(log):
    writer = LogWriter(log.path)
    writer.write("stdout", b"one\ntw")
    writer.write("stderr", b"oops\n")
    writer.write("stdout", b"o\n")
    writer.close()
    entries = list(read_logs(log.record))
    assert [(s, t) for s, _, t in entries] == [("stdout", "one\n"), ("stderr", "oops\n"), ("stdout", "two\n")]
    assert all(abs(ns - time.time_ns()) < 60e9 for _, ns, _ in entries)


def test_partial_lines_keep_their_missing_newline(log):
    writer = LogWriter(log.path)
    writer.write("stdout", b"x" * (16 * 1024 + 5) + b"\n")
    writer.write("stdout", b"no newline")
    writer.close()
    assert texts(read_logs(log.record)) == ["x" * 16 * 1024, "xxxxx\n", "no newline"]


def test_entry_unpacks_and_keeps_attrs(log):
    log(line("a\n", attrs={"tag": "web"}))
    (entry,) = read_logs(log.record)
    stream, time_ns, text = entry
    assert (stream, time_ns, text) == ("stdout", T0, "a\n")
    assert entry.attrs == {"tag": "web"}


def test_missing_log_file_reads_as_empty(log):
    assert list(read_logs(log.record)) == []
    assert list(read_logs({"Id": "c", "LogPath": ""})) == []


def test_a_line_still_being_written_is_left_out(log):
    log(line("a\n"), line("b\n")[:15])
    assert texts(read_logs(log.record)) == ["a\n"]


def test_undecodable_lines_are_skipped(log):
    log(line("a\n"), b"{not json\n", b'{"log":"x"}\n', b"\xff\xfe\n", line("b\n"))
    assert texts(read_logs(log.record)) == ["a\n", "b\n"]


def test_time_parsing_fast_path_matches_full_parser():
    from berth.units import parse_rfc3339_ns

    stamps = {}
    for stamp in ("2023-11-14T22:13:20Z", "2023-11-14T22:13:20.5Z", "2023-11-14T22:13:20.123456789Z",
                  "2023-11-14T22:13:20.1234567891Z", "2023-11-14T23:13:20.5+01:00"):
        raw = f'{{"log":"","stream":"stdout","time":"{stamp}"}}'.encode()
        assert decode_line(raw, stamps).time_ns == parse_rfc3339_ns(stamp), stamp
    assert decode_line(b'{"log":"","stream":"stdout","time":"2023-11-14T22:13:20ZZ"}', stamps) is None


@pytest.mark.parametrize("tail, expected", [
    (None, ["0\n", "1\n", "2\n", "3\n", "4\n"]),
    (-1, ["0\n", "1\n", "2\n", "3\n", "4\n"]),
    (0, []),
    (1, ["4\n"]),
    (2, ["3\n", "4\n"]),
    (5, ["0\n", "1\n", "2\n", "3\n", "4\n"]),
    (50, ["0\n", "1\n", "2\n", "3\n", "4\n"]),
])
def test_tail(log, tail, expected):
    log(*(line(f"{i}\n") for i in range(5)))
    assert texts(read_logs(log.record, tail=tail)) == expected


def test_tail_ignores_an_unfinished_last_line(log):
    log(*(line(f"{i}\n") for i in range(3)), line("partial")[:20])
    assert texts(read_logs(log.record, tail=2)) == ["1\n", "2\n"]


def test_tail_of_a_log_larger_than_the_read_blocks(log):
    lines = [line(f"{i:06d} " + "y" * 200 + "\n") for i in range(3000)]  # ~700 KiB
    log(*lines)
    got = texts(read_logs(log.record, tail=1234))
    assert len(got) == 1234
    assert got[0].startswith("001766 ") and got[-1].startswith("002999 ")
    assert len(list(read_logs(log.record))) == 3000


def test_since_and_until_are_inclusive(log):
    log(*(line(f"{i}\n", time_ns=T0 + i * 1_000_000_000) for i in range(5)))
    second = 1_000_000_000
    assert texts(read_logs(log.record, since_ns=T0 + 2 * second)) == ["2\n", "3\n", "4\n"]
    assert texts(read_logs(log.record, until_ns=T0 + 2 * second)) == ["0\n", "1\n", "2\n"]
    assert texts(read_logs(log.record, since_ns=T0 + second, until_ns=T0 + 3 * second - 1)) == ["1\n", "2\n"]
    assert texts(read_logs(log.record, since_ns=T0 + 10 * second)) == []


def test_since_stops_filtering_after_the_first_match_like_docker(log):
    # timestamps need not be monotonic; docker lets everything after the first match through
    log(line("a\n", time_ns=T0), line("b\n", time_ns=T0 + 5), line("c\n", time_ns=T0 + 1))
    assert texts(read_logs(log.record, since_ns=T0 + 2)) == ["b\n", "c\n"]


def test_until_ends_at_the_first_later_entry(log):
    log(line("a\n", time_ns=T0), line("b\n", time_ns=T0 + 5), line("c\n", time_ns=T0 + 1))
    assert texts(read_logs(log.record, until_ns=T0 + 2)) == ["a\n"]


def test_tail_is_taken_before_since(log):
    log(*(line(f"{i}\n", time_ns=T0 + i) for i in range(5)))
    assert texts(read_logs(log.record, since_ns=T0 + 1, tail=2)) == ["3\n", "4\n"]
    assert texts(read_logs(log.record, since_ns=T0 + 4, tail=3)) == ["4\n"]


# -- follow_logs --------------------------------------------------------------------------------

class FakeEngine:
    """engine.load over a record we change by hand; removed -> FileNotFoundError."""

    def __init__(self, record: dict):
        self.record = record
        self.removed = False
        self.loads = 0  # follow_logs loads the record once, then once per poll: how far it got

    def load(self, container_id: str) -> dict:
        self.loads += 1
        if self.removed:
            raise FileNotFoundError(container_id)
        return {**self.record, "State": dict(self.record["State"])}

    def set(self, **state) -> None:
        self.record["State"].update(state)


def running(log) -> FakeEngine:
    engine = FakeEngine(log.record)
    engine.set(Running=True, Pid=os.getpid())  # a live pid
    return engine


def collect(generator, into: list) -> threading.Thread:
    def run():
        for entry in generator:
            into.append(entry.text)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def polled(engine, times: int = 2):
    """Wait until the follower has looked at the state and read the file `times` more times."""
    target = engine.loads + times + 1  # +1: a load starts the poll whose read we wait for
    wait_for(lambda: engine.loads >= target, what=f"the follower to poll {times} more times")


def test_follow_of_a_stopped_container_prints_the_log_and_ends(log):
    log(line("a\n"), line("b\n"))
    assert texts(follow_logs(FakeEngine(log.record), "c")) == ["a\n", "b\n"]


def test_follow_yields_new_entries_until_the_container_stops(log):
    log(line("old\n"))
    engine = running(log)
    got = []
    thread = collect(follow_logs(engine, "c", poll=0.01), got)
    wait_for(lambda: got == ["old\n"])
    log(line("new 1\n"))
    wait_for(lambda: got == ["old\n", "new 1\n"])
    log(line("last\n"))
    engine.set(Running=False, Pid=0)
    thread.join(5)
    assert not thread.is_alive()
    assert got == ["old\n", "new 1\n", "last\n"]


def test_follow_waits_for_the_newline_of_a_line_being_written(log):
    engine = running(log)
    got = []
    thread = collect(follow_logs(engine, "c", poll=0.01), got)
    whole = line("split across writes\n")
    log(line("first\n") + whole[:10])  # one write: once "first" is out, the half line has been read too
    wait_for(lambda: got == ["first\n"], what="the first line")
    polled(engine)
    log(whole[10:])
    wait_for(lambda: len(got) == 2, what="the second line")
    assert got == ["first\n", "split across writes\n"]
    engine.set(Running=False, Pid=0)
    thread.join(5)
    assert not thread.is_alive()


def test_follow_survives_a_restart(log):
    engine = running(log)
    got = []
    thread = collect(follow_logs(engine, "c", poll=0.01), got)
    log(line("first run\n"))
    wait_for(lambda: got == ["first run\n"])
    engine.set(Running=False, Restarting=True, Pid=0)
    polled(engine)
    assert thread.is_alive()
    engine.set(Running=True, Restarting=False, Pid=os.getpid())
    log(line("second run\n"))
    wait_for(lambda: got == ["first run\n", "second run\n"])
    engine.set(Running=False, Pid=0)
    thread.join(5)
    assert not thread.is_alive()


def test_follow_ends_when_the_container_is_removed(log):
    engine = running(log)
    got = []
    thread = collect(follow_logs(engine, "c", poll=0.01), got)
    log(line("bye\n"))
    wait_for(lambda: got == ["bye\n"])
    engine.removed = True
    thread.join(5)
    assert not thread.is_alive()


def test_follow_waits_for_a_log_file_that_does_not_exist_yet(log):
    engine = running(log)
    got = []
    thread = collect(follow_logs(engine, "c", poll=0.01), got)
    polled(engine)  # it looked for the file, which is not there yet
    log(line("late\n"))
    wait_for(lambda: got == ["late\n"])
    engine.set(Running=False, Pid=0)
    thread.join(5)
    assert not thread.is_alive()


def test_follow_with_tail_zero_shows_only_new_entries(log):
    log(line("old\n"))
    engine = running(log)
    got = []
    thread = collect(follow_logs(engine, "c", tail=0, poll=0.01), got)
    polled(engine)  # past the initial read: "new" is written after it
    log(line("new\n"))
    wait_for(lambda: got == ["new\n"])
    engine.set(Running=False, Pid=0)
    thread.join(5)
    assert got == ["new\n"]


def test_follow_ends_at_until(log):
    engine = running(log)
    got = []
    now = time.time_ns()
    thread = collect(follow_logs(engine, "c", until_ns=now + 30_000_000_000, poll=0.01), got)
    polled(engine)
    log(line("in\n", time_ns=now), line("out\n", time_ns=now + 31_000_000_000), line("never\n", time_ns=now))
    thread.join(5)
    assert not thread.is_alive()
    assert got == ["in\n"]


def test_follow_ends_once_until_has_passed(log):
    engine = running(log)  # running for ever: only `until` ends the follow
    got = []
    thread = collect(follow_logs(engine, "c", until_ns=time.time_ns() + 100_000_000, poll=0.01), got)
    thread.join(30)  # a bound against a hang, not a timing check
    assert not thread.is_alive(), "follow did not end after --until passed"
    assert got == []


def test_follow_gives_up_on_a_running_record_whose_process_is_gone(log):
    # after STALE_RUNNING_SECONDS (2 s) of a "running" record without a process
    log(line("a\n"))
    engine = FakeEngine(log.record)
    engine.set(Running=True, Pid=2 ** 22 + 1)  # above pid_max: never alive
    assert texts(follow_logs(engine, "c", poll=0.01)) == ["a\n"]


def test_follow_asks_the_engine_whether_the_supervisor_lives(log):
    class Engine(FakeEngine):
        alive = True

        def monitor_alive(self, container_id):
            return self.alive

    engine = Engine(log.record)
    engine.set(Running=False, Restarting=True, Pid=0)
    got = []
    thread = collect(follow_logs(engine, "c", poll=0.01), got)
    polled(engine)
    assert thread.is_alive()
    engine.alive = False
    thread.join(5)
    assert not thread.is_alive()


# -- --since / --until / --tail / -t as docker's CLI and daemon read them ------------------------

NOW = T0 + 123_456_789


@pytest.mark.parametrize("value, expected", [
    ("10m", "1699999400"),
    ("1h30m", "1699994600"),
    ("1.5s", "1699999998"),
    ("-5m", "1700000300"),
    ("0", "0"),
    ("1700000000", "1700000000"),
    ("1700000000.5", "1700000000.5"),
    ("2023-11-14T22:13:20Z", "1700000000.000000000"),
    ("2023-11-14T22:13:20.123Z", "1700000000.123000000"),
    ("2023-11-14T22:13:20.123456789123Z", "1700000000.123456789"),
    ("2023-11-14T23:13:20+01:00", "1700000000.000000000"),
    ("2023-11-14T17:13:20.5-05:00", "1700000000.500000000"),
    ("2023-11-14T22:13Z", "1699999980.000000000"),
    ("2023-11-14T23:13+01:00", "1699999980.000000000"),
    ("2023-11-14T22Z", "1699999200.000000000"),
    ("2023-11-14Z", "1699920000.000000000"),
    ("2023-11-14+01:00", "1699916400.000000000"),
])
def test_get_timestamp(value, expected):
    assert get_timestamp(value, NOW) == expected


@pytest.mark.parametrize("value, expected", [
    ("2023-11-14T22:13:20", "1700000000.000000000"),
    ("2023-11-14T22:13:20.25", "1700000000.250000000"),
    ("2023-11-14T22:13", "1699999980.000000000"),
    ("2023-11-14T22", "1699999200.000000000"),
    ("2023-11-14", "1699920000.000000000"),
])
def test_get_timestamp_without_zone_is_local_time(value, expected, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        assert get_timestamp(value, NOW) == expected
        monkeypatch.setenv("TZ", "EST+5")
        time.tzset()
        seconds, _, fraction = expected.partition(".")
        assert get_timestamp(value, NOW) == f"{int(seconds) + 5 * 3600}.{fraction}"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("value, message", [
    ("abc", 'failed to parse value as time or duration: "abc"'),
    ("1.", 'failed to parse value as time or duration: "1."'),
    ("2023/11/14", 'failed to parse value as time or duration: "2023/11/14"'),
    ("2023-13-01", 'parsing time "2023-13-01": month out of range'),
    ("2023-02-29", 'parsing time "2023-02-29": day out of range'),
    ("2023-11-14T24:00", 'parsing time "2023-11-14T24:00": hour out of range'),
    ("2023-11-14T22:61Z", 'parsing time "2023-11-14T22:61Z": minute out of range'),
    ("2023-1-14", 'parsing time "2023-1-14" as "2006-01-02": cannot parse "1-14" as "01"'),
    ("2023-11-14 22:13:20", 'parsing time "2023-11-14 22:13:20": extra text: " 22:13:20"'),
    ("2023-11-14T22:13:20Zx", 'parsing time "2023-11-14T22:13:20Zx": extra text: "x"'),
    ("2023-11-14T22:13:20+0100",
     'parsing time "2023-11-14T22:13:20+0100" as "2006-01-02T15:04Z07:00": cannot parse ":20+0100" as "Z07:00"'),
    ("2023-11-14T22:13:20.5+25:00", 'parsing time "2023-11-14T22:13:20.5+25:00": time zone offset hour out of range'),
    ("-5", 'parsing time "-5" as "2006-01-02": cannot parse "-5" as "2006"'),
])
def test_get_timestamp_errors(value, message):
    with pytest.raises(ValueError) as err:
        get_timestamp(value, NOW)
    assert str(err.value) == message


def test_go_parse_time_literal_mismatch_names_only_the_literal():
    with pytest.raises(ValueError, match=r'cannot parse "_abc" as ":"$'):
        go_parse_time("2006-01-02T15:04:05Z07:00", "2006-01-02T15:04_abc")
    with pytest.raises(ValueError, match=r'cannot parse "" as "T"$'):
        go_parse_time("2006-01-02T15:04:05Z07:00", "2006-01-02")


def test_parse_unix_timestamp():
    assert parse_unix_timestamp("1700000000") == (1700000000, 0)
    assert parse_unix_timestamp("1700000000.5") == (1700000000, 500_000_000)
    assert parse_unix_timestamp("1700000000.000000001") == (1700000000, 1)
    for bad in ("", "x", "1.x", "1_0", " 1"):
        with pytest.raises(ValueError):
            parse_unix_timestamp(bad)


@pytest.mark.parametrize("value, expected", [("all", -1), ("5", 5), ("0", 0), ("-3", -3), ("+2", 2),
                                             ("x", -1), ("1_0", -1), (" 1", -1), ("", -1)])
def test_parse_tail_is_the_daemons_atoi(value, expected):
    assert parse_tail(value) == expected


def test_timestamps_have_nine_fraction_digits():
    assert format_timestamp(T0) == "2023-11-14T22:13:20.000000000Z"
    assert format_timestamp(T0 + 5_000) == "2023-11-14T22:13:20.000005000Z"
