"""docker's timetypes (--since/--until values: GetTimestamp, ParseTimestamps), the Go time
layouts they try, on top of berth.units' Go time parsing, and Go's Duration.String (health
checks). It imports units, never the other way round."""

import time

from berth.strconv import quote
from berth.units import RFC3339, go_parse_time, parse_duration_ns

# -- docker's timetypes.GetTimestamp ---------------------------------------------------------

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
            raise ValueError(f"failed to parse value as time or duration: {quote(value)}") from None
        return value  # already a Unix timestamp
    return f"{seconds}.{nanos:09d}"


def parse_unix_timestamp(value: str) -> tuple[int, int]:
    """docker's timetypes.ParseTimestamps: "seconds[.fraction]" -> (seconds, nanoseconds)."""
    whole, dot, fraction = value.partition(".")
    seconds = go_parse_int(whole)
    if not dot:
        return seconds, 0
    nanos = go_parse_int(fraction)
    return seconds, int(float(nanos) * 10.0 ** (9 - len(fraction)))


def go_parse_int(s: str) -> int:
    """strconv.ParseInt(s, 10, 64) / Atoi: optional sign, ASCII digits, int64 range."""
    digits = s[1:] if s[:1] in ("+", "-") and s else s
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError(f'strconv.ParseInt: parsing {quote(s)}: invalid syntax')
    number = int(s)
    if not -(1 << 63) <= number < 1 << 63:
        raise ValueError(f'strconv.ParseInt: parsing {quote(s)}: value out of range')
    return number


def go_duration(ns: int) -> str:
    """Go's time.Duration.String(): 200ms, 1.5s, 1m30s, 1h0m0s."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _fraction(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    if not part:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{part:0{digits}d}".rstrip("0")
