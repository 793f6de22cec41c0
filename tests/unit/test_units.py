"""Sizes, durations and timestamps print and parse like docker/go-units and Go."""

import pytest

from berth.units import (
    bytes_size,
    format_rfc3339_nano,
    format_rfc3339_nano_ns,
    human_duration,
    human_size,
    parse_duration,
    parse_duration_ns,
    parse_rfc3339,
    parse_rfc3339_ns,
    ram_in_bytes,
)

KiB, MiB, GiB, TiB, PiB = (1 << 10), (1 << 20), (1 << 30), (1 << 40), (1 << 50)
MINUTE, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"), (999, "999B"), (1000, "1kB"), (1024, "1.02kB"), (12345, "12.3kB"),
        (4261000, "4.26MB"), (1048576, "1.05MB"), (123e6, "123MB"), (1.5e9, "1.5GB"),
        (3.42e9, "3.42GB"), (2.22e15, "2.22PB"),
        (999999, "1e+03kB"),  # Go's %.3g rounds into an exponent, and so do we
        (1e28, "1e+04YB"),
    ],
)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"), (1023, "1023B"), (1024, "1KiB"), (MiB, "1MiB"), (2 * MiB, "2MiB"),
        (4.063 * MiB, "4.063MiB"), (3.42 * GiB, "3.42GiB"), (5.372 * TiB, "5.372TiB"),
        (2.22 * PiB, "2.22PiB"), (KiB ** 5 * PiB, "1.049e+06YiB"),
    ],
)
def test_bytes_size(size, text):
    assert bytes_size(size) == text


# go-units' ExampleHumanDuration, case for case.
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.45, "Less than a second"),
        (-5, "Less than a second"),
        (1, "1 second"),
        (47, "47 seconds"),
        (MINUTE, "About a minute"),
        (3 * MINUTE, "3 minutes"),
        (35 * MINUTE, "35 minutes"),
        (35 * MINUTE + 40, "35 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 45 * MINUTE, "2 hours"),
        (3 * HOUR, "3 hours"),
        (3 * HOUR + 59 * MINUTE, "4 hours"),
        (3 * HOUR + 60 * MINUTE, "4 hours"),
        (DAY, "24 hours"),
        (DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK, "4 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (3 * MONTH + WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
    ],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("32", 32), ("32b", 32), ("32B", 32), ("512", 512),
        ("32k", 32 * KiB), ("32K", 32 * KiB), ("32kb", 32 * KiB), ("32Kb", 32 * KiB),
        ("32Kib", 32 * KiB), ("32KIB", 32 * KiB), ("10k", 10 * KiB),
        ("6m", 6 * MiB), ("32Mb", 32 * MiB), ("1g", GiB), ("1GB", GiB), ("1GiB", GiB),
        ("1.5g", int(1.5 * GiB)), ("32Gb", 32 * GiB), ("32Tb", 32 * TiB),
        ("32Pb", 32 * PiB), ("32PB", 32 * PiB), ("32P", 32 * PiB),
        ("32.3", 32), ("32.3 mb", int(32.3 * MiB)), ("0.3MB", int(0.3 * MiB)),
        ("1e3", 1000), ("10.", 10),
    ],
)
def test_ram_in_bytes(text, size):
    assert ram_in_bytes(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalid size: ''"),
        ("hello", "invalid size: 'hello'"),
        ("-32", "invalid size: '-32'"),
        (" 32 ", 'strconv.ParseFloat: parsing "": invalid syntax'),
        ("32m b", 'strconv.ParseFloat: parsing "32m": invalid syntax'),
        ("1.2.3k", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
        ("1_0", 'strconv.ParseFloat: parsing "1_0": invalid syntax'),
        ("32bm", "invalid suffix: 'bm'"),
        ("10x", "invalid suffix: 'x'"),
        ("10kx", "invalid suffix: 'kx'"),
        ("10KBB", "invalid suffix: 'kbb'"),
        ("10KiBB", "invalid suffix: 'KiBB'"),  # too long: go-units reports it as typed
        ("1e400g", "invalid size: '1e400g'"),
    ],
)
def test_ram_in_bytes_errors(text, message):
    with pytest.raises(ValueError) as exc:
        ram_in_bytes(text)
    assert str(exc.value) == message


def test_parse_rfc3339_keeps_nanoseconds():
    assert parse_rfc3339_ns("1970-01-01T00:00:00Z") == 0
    assert parse_rfc3339_ns("2026-11-27T23:25:02.123456789Z") == 1795821902_123456789
    assert parse_rfc3339_ns("2026-11-27T23:25:02.1234567891Z") == 1795821902_123456789
    assert parse_rfc3339("2026-11-27T23:25:02.5Z") == 1795821902.5


def test_parse_rfc3339_offsets():
    utc = parse_rfc3339_ns("2026-11-27T22:25:02Z")
    assert parse_rfc3339_ns("2026-11-27T23:25:02+01:00") == utc
    assert parse_rfc3339_ns("2026-11-27T20:55:02-01:30") == utc


def test_parse_rfc3339_leap_days_and_old_dates():
    assert parse_rfc3339_ns("2024-02-29T00:00:00Z") == 1709164800 * 10**9
    assert parse_rfc3339_ns("1969-12-31T23:59:59Z") == -(10**9)
    assert parse_rfc3339_ns("2000-03-01T00:00:00Z") == 951868800 * 10**9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-13-01T00:00:00Z", 'parsing time "2026-13-01T00:00:00Z": month out of range'),
        ("2026-02-29T00:00:00Z", 'parsing time "2026-02-29T00:00:00Z": day out of range'),
        ("2026-11-27T24:00:00Z", 'parsing time "2026-11-27T24:00:00Z": hour out of range'),
        ("2026-11-27 23:25:02Z",
         'parsing time "2026-11-27 23:25:02Z" as "2006-01-02T15:04:05Z07:00": '
         'cannot parse " 23:25:02Z" as "T"'),  # Go names only the literal it expected
        ("2026-11-27T23:25:02",
         'parsing time "2026-11-27T23:25:02" as "2006-01-02T15:04:05Z07:00": '
         'cannot parse "" as "Z07:00"'),
        ("2026-11-27T23:25:02.Z",
         'parsing time "2026-11-27T23:25:02.Z" as "2006-01-02T15:04:05Z07:00": '
         'cannot parse ".Z" as "Z07:00"'),
        ("2026-11-27T23:25:02Zx", 'parsing time "2026-11-27T23:25:02Zx": extra text: "x"'),
        ("yesterday",
         'parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": '
         'cannot parse "yesterday" as "2006"'),
    ],
)
def test_parse_rfc3339_errors(text, message):
    with pytest.raises(ValueError) as exc:
        parse_rfc3339(text)
    assert str(exc.value) == message


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1795821902_123456789, "2026-11-27T23:25:02.123456789Z"),
        (1795821902_120000000, "2026-11-27T23:25:02.12Z"),
        (1795821902_000000000, "2026-11-27T23:25:02Z"),
        (0, "1970-01-01T00:00:00Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
    ],
)
def test_format_rfc3339_nano_ns(ns, text):
    assert format_rfc3339_nano_ns(ns) == text


def test_format_rfc3339_nano_from_float_seconds():
    assert format_rfc3339_nano(1795821902.5) == "2026-11-27T23:25:02.5Z"
    assert format_rfc3339_nano(1795821902.0) == "2026-11-27T23:25:02Z"
    assert format_rfc3339_nano(1795821902) == "2026-11-27T23:25:02Z"
    assert format_rfc3339_nano(-1.25) == "1969-12-31T23:59:58.75Z"
    # A float has no nanoseconds to give: the fraction is rounded to microseconds.
    assert format_rfc3339_nano(1795821902.123456789) == "2026-11-27T23:25:02.123457Z"


def test_rfc3339_round_trip():
    text = "2026-11-27T23:25:02.000001Z"
    assert format_rfc3339_nano_ns(parse_rfc3339_ns(text)) == text
    assert format_rfc3339_nano(parse_rfc3339(text)) == text


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0), ("-0", 0), ("10s", 10 * 10**9), ("1m30s", 90 * 10**9), ("500ms", 5 * 10**8),
        ("1h", 3600 * 10**9), ("-1.5h", -5400 * 10**9), ("+5s", 5 * 10**9),
        (".5s", 5 * 10**8), ("1.s", 10**9), ("1h2m3.5s", 3723_500_000_000),
        ("2us", 2000), ("3\u00b5s", 3000), ("3\u03bcs", 3000), ("7ns", 7),
        ("1.0000000001s", 10**9), ("9223372036854775807ns", (1 << 63) - 1),
    ],
)
def test_parse_duration(text, ns):
    assert parse_duration_ns(text) == ns
    assert parse_duration(text) == ns / 1e9


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("-", 'time: invalid duration "-"'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("10", 'time: missing unit in duration "10"'),
        ("1.5", 'time: missing unit in duration "1.5"'),
        ("10x", 'time: unknown unit "x" in duration "10x"'),
        ("1e3s", 'time: unknown unit "e" in duration "1e3s"'),
        ("1 s", 'time: unknown unit " s" in duration "1 s"'),
        ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
        ("3000000h", 'time: invalid duration "3000000h"'),
    ],
)
def test_parse_duration_errors(text, message):
    with pytest.raises(ValueError) as exc:
        parse_duration(text)
    assert str(exc.value) == message
