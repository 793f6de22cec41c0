"""`berth logs`: print a container's json-file log the way `docker logs` does: stdout entries
to our stdout, stderr entries to our stderr, bytes exactly as logged; and docker's
--since/--until parsing (timetypes.GetTimestamp), done client-side as docker does."""

import os
import sys
import time

from berth.cli.flags import BOOL, STRING, Command, Flag, help_text, parse
from berth.errors import InvalidArgument
from berth.units import format_rfc3339_nano_ns, go_quote, parse_duration_ns, parse_rfc3339_ns

LOGS = Command("logs", "berth logs [OPTIONS] CONTAINER", "Fetch the logs of a container",
               [Flag("details", None, BOOL, False, "Show extra details provided to logs"),
                Flag("follow", "f", BOOL, False, "Follow log output"),
                Flag("since", None, STRING, "", 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or '
                                                'relative (e.g. "42m" for 42 minutes)'),
                Flag("tail", "n", STRING, "all", 'Number of lines to show from the end of the logs (default "all")'),
                Flag("timestamps", "t", BOOL, False, "Show timestamps"),
                Flag("until", None, STRING, "", 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or '
                                                'relative (e.g. "42m" for 42 minutes)')],
               min_args=1, max_args=1)


def cmd_logs(engine, argv: list[str]) -> int:
    opts, args = parse(LOGS, argv)
    if opts.help:
        sys.stdout.write(help_text(LOGS))
        return 0
    record = engine.get(args[0])
    now_ns = time.time_ns()
    since_ns = _bound("since", opts.since, now_ns)
    until_ns = _bound("until", opts.until, now_ns)
    tail = parse_tail(opts.tail)
    from berth.engine.logs import follow_logs, read_logs

    if opts.follow:
        entries = follow_logs(engine, record["Id"], since_ns, until_ns, tail)
    else:
        entries = read_logs(record, since_ns, until_ns, tail)
    printer = Printer(opts.timestamps, opts.details, flush_each=opts.follow)
    try:
        for entry in entries:
            printer.write(entry)
        printer.flush()
    except KeyboardInterrupt:
        _quietly_flush(printer)
    except BrokenPipeError:
        _silence_stdio()
    return 0


class Printer:
    """Writes entries to our stdout/stderr as bytes. Each stream is flushed before the other
    is written, so `2>&1` keeps the log's order."""

    __slots__ = ("timestamps", "details", "flush_each", "streams", "last", "second")

    def __init__(self, timestamps: bool, details: bool, flush_each: bool):
        self.timestamps = timestamps
        self.details = details
        self.flush_each = flush_each
        self.streams = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
        self.last = None
        self.second = (None, b"")  # the last second formatted, and its text

    def write(self, entry) -> None:
        out = self.streams.get(entry.stream, self.streams["stdout"])
        if self.last is not None and self.last is not out:
            self.last.flush()
        self.last = out
        data = _encode(entry.text)
        if self.details:
            data = _details(entry.attrs) + b" " + data
        if self.timestamps:
            data = self._stamp(entry.time_ns) + data
        out.write(data)
        if self.flush_each:
            out.flush()

    def _stamp(self, time_ns: int) -> bytes:
        seconds, fraction = divmod(time_ns, 1_000_000_000)
        if self.second[0] != seconds:
            self.second = (seconds, format_timestamp(seconds * 1_000_000_000)[:-11].encode())
        return self.second[1] + b".%09dZ " % fraction

    def flush(self) -> None:
        if self.last is not None:
            self.last.flush()


def _encode(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape: Go decodes it as U+FFFD
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()


def _details(attrs: dict) -> bytes:
    """docker's attrsByteSlice: k=v pairs sorted by key, query-escaped, comma-separated."""
    return ",".join(f"{_query_escape(k)}={_query_escape(str(v))}" for k, v in sorted(attrs.items())).encode()


def _query_escape(s: str) -> str:
    """Go's url.QueryEscape."""
    out = []
    for byte in s.encode():
        ch = chr(byte)
        if ch.isascii() and (ch.isalnum() or ch in "-_.~"):
            out.append(ch)
        elif ch == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def format_timestamp(time_ns: int) -> str:
    """docker's RFC3339NanoFixed in UTC: always nine fraction digits, so columns line up."""
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    return f"{format_rfc3339_nano_ns(seconds * 1_000_000_000)[:-1]}.{fraction:09d}Z"


def _quietly_flush(printer: Printer) -> None:
    try:
        printer.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        _silence_stdio()


def _silence_stdio() -> None:
    """Our reader went away: send what is still buffered nowhere, so exiting does not
    complain about a broken pipe."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.dup2(null, sys.stderr.fileno())
    os.close(null)


def parse_tail(value: str) -> int:
    """The daemon's strconv.Atoi(tail): anything that is not an integer ("all") means all."""
    try:
        return _go_parse_int(value)
    except ValueError:
        return -1


def _bound(name: str, value: str, now_ns: int) -> int | None:
    """--since/--until as the CLI sends them and the daemon reads them back; None: no bound."""
    if value == "":
        return None
    try:
        stamp = get_timestamp(value, now_ns)
        seconds, nanos = parse_unix_timestamp(stamp)
    except ValueError as err:
        raise InvalidArgument(f'invalid value for "{name}": {err}') from None
    if name == "until" and stamp == "0":
        return None
    return seconds * 1_000_000_000 + nanos


# -- docker's timetypes.GetTimestamp ---------------------------------------------------------

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
RFC3339_LOCAL = "2006-01-02T15:04:05"
RFC3339_NANO_LOCAL = "2006-01-02T15:04:05.999999999"
DATE_WITH_ZONE = "2006-01-02Z07:00"
DATE_LOCAL = "2006-01-02"


def get_timestamp(value: str, now_ns: int) -> str:
    """A Go duration before now, an RFC 3339-like time (local zone unless one is given), or
    a Unix timestamp -> "seconds[.nanoseconds]", exactly as docker's CLI converts --since."""
    if value != "0":
        try:
            duration = parse_duration_ns(value)
        except ValueError:
            pass
        else:
            return str((now_ns - duration) // 1_000_000_000)
    in_location = not any(c in value for c in "zZ+") and value.count("-") != 3
    if "." in value:
        layout = RFC3339_NANO_LOCAL if in_location else RFC3339_NANO
    elif "T" in value:
        colons = value.count(":")
        if not in_location and not any(c in value for c in "zZ") and colons > 0:
            colons -= 1  # the one in the zone offset
        if in_location:
            layout = ("2006-01-02T15", "2006-01-02T15:04", RFC3339_LOCAL)[min(colons, 2)]
        else:
            layout = ("2006-01-02T15Z07:00", "2006-01-02T15:04Z07:00", RFC3339)[min(colons, 2)]
    else:
        layout = DATE_LOCAL if in_location else DATE_WITH_ZONE
    local_offset = time.localtime(now_ns // 1_000_000_000).tm_gmtoff if in_location else 0
    try:
        seconds, nanos = go_parse_time(layout, value, local_offset)
    except ValueError:
        if "-" in value:
            raise  # an RFC 3339-like time the parser rejected: Go's error says why
        try:
            parse_unix_timestamp(value)
        except ValueError:
            raise ValueError(f"failed to parse value as time or duration: {go_quote(value)}") from None
        return value  # already a Unix timestamp
    return f"{seconds}.{nanos:09d}"


def parse_unix_timestamp(value: str) -> tuple[int, int]:
    """docker's timetypes.ParseTimestamps: "seconds[.fraction]" -> (seconds, nanoseconds)."""
    whole, dot, fraction = value.partition(".")
    seconds = _go_parse_int(whole)
    if not dot:
        return seconds, 0
    nanos = _go_parse_int(fraction)
    return seconds, int(float(nanos) * 10.0 ** (9 - len(fraction)))


def _go_parse_int(s: str) -> int:
    """strconv.ParseInt(s, 10, 64) / Atoi: optional sign, ASCII digits, int64 range."""
    digits = s[1:] if s[:1] in ("+", "-") and s else s
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f'strconv.ParseInt: parsing {go_quote(s)}: invalid syntax')
    number = int(s)
    if not -(1 << 63) <= number < 1 << 63:
        raise ValueError(f'strconv.ParseInt: parsing {go_quote(s)}: value out of range')
    return number


# The layout elements GetTimestamp's layouts use, longest first.
_ELEMENTS = (".999999999", "Z07:00", "2006", "01", "02", "15", "04", "05")
_RANGES = {"01": (1, 12, "month"), "15": (0, 23, "hour"), "04": (0, 59, "minute"), "05": (0, 59, "second")}


def go_parse_time(layout: str, value: str, local_offset: int = 0) -> tuple[int, int]:
    """Go's time.Parse (or ParseInLocation in a fixed zone `local_offset` seconds east of UTC,
    used when the layout has no zone) for the layouts above -> (Unix seconds, nanoseconds).
    Errors carry Go's wording."""
    original = value
    fields = {"2006": 0, "01": 1, "02": 1, "15": 0, "04": 0, "05": 0}
    nanos = 0
    offset = local_offset
    rest = layout
    while True:
        element, literal = _next_element(rest)
        for ch in literal:  # Go's skip(): literal text must match exactly
            if not value or value[0] != ch:
                raise _parse_error(layout, original, literal, value)
            value = value[1:]
        rest = rest[len(literal) + len(element):]
        if not element:
            if value:
                raise ValueError(f"parsing time {go_quote(original)}: extra text: {go_quote(value)}")
            break
        held = value
        range_error = ""
        ok = True
        if element == "2006":
            ok = len(value) >= 4 and value[:4].isascii() and value[:4].isdigit()
            if ok:
                fields["2006"], value = int(value[:4]), value[4:]
        elif element == ".999999999":
            nanos, value = _fraction(value, nanos)
        elif element == "Z07:00":
            if value[:1] == "Z":
                value = value[1:]
                offset = 0
            elif len(value) < 6 or value[3] != ":":
                ok = False
            else:
                hours, _, ok = _getnum(value[1:3], fixed=True)
                minutes, _, ok_minutes = _getnum(value[4:6], fixed=True)
                ok = ok and ok_minutes and value[0] in ("+", "-")
                if hours > 24:  # Go allows 24: some zones had such offsets
                    range_error = "time zone offset hour"
                if minutes > 60:
                    range_error = "time zone offset minute"
                offset = (hours * 60 + minutes) * 60 * (-1 if value[0] == "-" else 1)
                value = value[6:]
        else:
            number, value, ok = _getnum(value, fixed=element != "15")
            if ok:
                fields[element] = number
                low, high, what = _RANGES.get(element, (0, 99, ""))
                if not low <= number <= high:
                    range_error = what
                elif element == "05" and not rest.startswith(".999999999"):
                    nanos, value = _fraction(value, nanos)  # Go reads one even if the layout has none
        if range_error:
            raise ValueError(f"parsing time {go_quote(original)}: {range_error} out of range")
        if not ok:
            raise _parse_error(layout, original, element, held)
    year, month, day = fields["2006"], fields["01"], fields["02"]
    if not 1 <= day <= _days_in_month(year, month):
        raise ValueError(f"parsing time {go_quote(original)}: day out of range")
    midnight = parse_rfc3339_ns(f"{year:04d}-{month:02d}-{day:02d}T00:00:00Z") // 1_000_000_000
    seconds = midnight + fields["15"] * 3600 + fields["04"] * 60 + fields["05"] - offset
    return seconds, nanos


def _parse_error(layout: str, value: str, layout_elem: str, value_elem: str) -> ValueError:
    return ValueError(f"parsing time {go_quote(value)} as {go_quote(layout)}: "
                      f"cannot parse {go_quote(value_elem)} as {go_quote(layout_elem)}")


def _next_element(layout: str) -> tuple[str, str]:
    """(next layout element, the literal text before it); ("", rest) at the end."""
    for i in range(len(layout)):
        for element in _ELEMENTS:
            if layout.startswith(element, i):
                return element, layout[:i]
    return "", layout


def _fraction(value: str, nanos: int) -> tuple[int, str]:
    """A "." or "," and digits, if there: the first nine digits are nanoseconds."""
    if value[:1] not in (".", ",") or not (value[1:2].isascii() and value[1:2].isdigit()):
        return nanos, value
    n = 1
    while n < len(value) and value[n].isascii() and value[n].isdigit():
        n += 1
    return int(value[1:min(n, 10)].ljust(9, "0")), value[n:]


def _getnum(value: str, fixed: bool) -> tuple[int, str, bool]:
    """Go's getnum: one or two digits (exactly two when `fixed`)."""
    if not (value[:1].isascii() and value[:1].isdigit()):
        return 0, value, False
    if not (value[1:2].isascii() and value[1:2].isdigit()):
        if fixed:
            return 0, value, False
        return int(value[0]), value[1:], True
    return int(value[:2]), value[2:], True


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31
