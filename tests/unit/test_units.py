"""Sizes, durations and timestamps print and parse like docker/go-units and Go; and Go's
strconv (Quote, ParseBool), which the messages and flags that show or read them share."""

import ast
import os
import subprocess
import sys

import pytest

from berth.cli.flags import BOOL, Command, Flag, parse
from berth.engine import settings
from berth.engine.security import security_options
from berth.errors import InvalidArgument
from berth.gotime import get_timestamp
from berth.strconv import parse_bool, quote, quote_rune, quote_to_ascii
from berth.units import (
    RFC3339,
    bytes_size,
    format_rfc3339_nano,
    format_rfc3339_nano_ns,
    go_parse_time,
    human_duration,
    human_size,
    parse_duration,
    parse_duration_ns,
    parse_rfc3339,
    parse_rfc3339_ns,
    ram_in_bytes,
)

SRC = os.path.join(os.path.dirname(__file__), "..", "..", "src")
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


def test_units_and_gotime_import_one_way():
    """units is the base: it imports no berth module at load time (gotime builds on it), so a
    process that only formats sizes or timestamps never loads the rest."""
    code = ("import sys; import berth.units; "
            "print(sorted(m for m in sys.modules if m.startswith('berth.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": SRC}).stdout
    assert out.strip() == "['berth.units']"
    assert _berth_imports("units.py") <= {"berth.strconv"}  # only for error messages, lazily
    assert "berth.units" in _berth_imports("gotime.py")


def _berth_imports(name: str) -> set:
    tree = ast.parse(open(os.path.join(SRC, "berth", name)).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("berth"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("berth"))
    return found


def test_go_parse_time_and_the_layouts_docker_uses():
    # gotime's layouts go through the one time.Parse in units
    assert go_parse_time(RFC3339, "2026-11-27T23:25:02+01:00") == (1795818302, 0)
    assert get_timestamp("2026-11-27T23:25:02Z", 0) == "1795821902.000000000"
    assert get_timestamp("1795821902.5", 0) == "1795821902.5"
    with pytest.raises(ValueError, match='failed to parse value as time or duration: "x\\\\ty"'):
        get_timestamp("x\ty", 0)


# --- Go's strconv: Quote and ParseBool, and the places that must use them ------------------------


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("", '""'), ("sh -c echo", '"sh -c echo"'), ('say "hi"', '"say \\"hi\\""'), ("a\\b", '"a\\\\b"'),
        ("tab\there", '"tab\\there"'), ("nl\n", '"nl\\n"'), ("\a\b\f\r\v", '"\\a\\b\\f\\r\\v"'),
        ("\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'), ("héllo ☃", '"héllo ☃"'), ("\u00a0", '"\\u00a0"'),
        ("\u2028", '"\\u2028"'), ("\U0001F600", '"\U0001F600"'), ("\U000E0001", '"\\U000e0001"'),
        ("bad\udcff", '"bad\\xff"'),  # a byte that was not UTF-8 (surrogateescape): Go prints \xff
        ("\ud800", '"\\ufffd"'),
    ],
)
def test_quote_is_gos_strconv_quote(text, quoted):
    assert quote(text) == quoted


def test_quote_variants():
    assert quote_to_ascii("héllo ☃") == '"h\\u00e9llo \\u2603"'
    assert quote_rune("'") == "'\\''" and quote_rune('"') == "'\"'" and quote_rune("\n") == "'\\n'"


def test_no_other_quote_implementation():
    """One Go quoting: no module hand-escapes quotes for %q any more."""
    for dirpath, _, files in os.walk(os.path.join(SRC, "berth")):
        for name in files:
            path = os.path.join(dirpath, name)
            if not name.endswith(".py") or path.endswith(os.path.join("berth", "strconv.py")):
                continue
            text = open(path).read()
            assert """.replace('"', '\\\\"')""" not in text, path
            assert "def go_quote" not in text or "from berth.strconv import quote" in text, path


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(text):
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(text):
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "tRue", "yes", "no", "on", "2", " true", "true ", "ｔｒｕｅ", 'x"y'])
def test_parse_bool_refuses_with_gos_message(text):
    with pytest.raises(ValueError) as exc:
        parse_bool(text)
    assert str(exc.value) == f"strconv.ParseBool: parsing {quote(text)}: invalid syntax"


FLAGS = Command("ps", "berth ps", "", [Flag("all", "a", BOOL, False)], max_args=0)


def test_bool_flags_read_values_like_pflag():
    assert parse(FLAGS, ["--all=T"])[0].all is True
    assert parse(FLAGS, ["--all=False"])[0].all is False
    assert parse(FLAGS, ["-a"])[0].all is True
    with pytest.raises(InvalidArgument) as exc:
        parse(FLAGS, ["--all=tRue"])  # pflag's strconv.ParseBool is not case-insensitive
    assert 'invalid argument "tRue" for "-a, --all" flag: strconv.ParseBool: parsing "tRue": invalid syntax' \
        in str(exc.value)


def test_security_opt_booleans_are_parse_bool():
    assert security_options(["no-new-privileges=T"]).no_new_privileges is True
    assert security_options(["no-new-privileges=FALSE"]).no_new_privileges is False
    with pytest.raises(InvalidArgument, match='invalid --security-opt 2: "no-new-privileges=yes"'):
        security_options(["no-new-privileges=yes"])


def test_daemon_json_string_booleans_are_parse_bool(tmp_path):
    config = tmp_path / "daemon.json"
    config.write_text('{"icc": "F", "ip-forward": "TRUE"}')
    loaded = settings.load(str(config), {})
    assert loaded.icc is False and loaded.ip_forward is True
    config.write_text('{"icc": "fAlse"}')
    with pytest.raises(InvalidArgument, match="is not a boolean"):
        settings.load(str(config), {})
