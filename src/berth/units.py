"""Human-readable sizes, durations and timestamps, matching docker/go-units
and Go's time package so berth prints and accepts what docker does.

Cheap to import: no `re`, no `datetime`, no `calendar`.
"""

from __future__ import annotations

import time

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
# RAMInBytes is binary whatever the suffix says: "1m", "1mb" and "1MiB" are all 1 MiB.
_BINARY_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

_RFC3339 = "2006-01-02T15:04:05Z07:00"

# Go's time.ParseDuration units, in nanoseconds.
_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # U+00B5 micro sign
    "\u03bcs": 1_000,  # U+03BC Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_DURATION = (1 << 63) - 1


def _scale(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(abbrs) - 1:
        size /= base
        i += 1
    return size, abbrs[i]


def human_size(size: float) -> str:
    """Decimal size with 3 significant digits, as `docker images` shows it:
    1000 -> "1kB", 4261000 -> "4.26MB" (go-units HumanSizeWithPrecision(size, 3))."""
    size, unit = _scale(float(size), 1000.0, _DECIMAL_ABBRS)
    return f"{size:.3g}{unit}"


def bytes_size(size: float) -> str:
    """Binary size with 4 significant digits: 1024 -> "1KiB" (go-units BytesSize)."""
    size, unit = _scale(float(size), 1024.0, _BINARY_ABBRS)
    return f"{size:.4g}{unit}"


def human_duration(seconds: float) -> str:
    """Approximate duration as in "Up 3 minutes" (go-units HumanDuration)."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ram_in_bytes(s: str) -> int:
    """Parse a memory size like "512", "10k", "1.5g", "1GiB" (go-units
    RAMInBytes): binary multipliers, case-insensitive, optional "b"/"ib"."""
    num, space, suffix = s.partition(" ")
    if not space:
        sep = max(s.rfind(c) for c in "0123456789.")
        if sep == -1:
            raise ValueError(f"invalid size: '{s}'")
        num, suffix = s[: sep + 1], s[sep + 1:]
    size = _go_parse_float(num)
    if size < 0:
        raise ValueError(f"invalid size: '{s}'")
    if not suffix:
        return _to_int64(size, s)
    lowered = suffix.lower()
    if len(lowered) > 3:
        raise ValueError(f"invalid suffix: '{suffix}'")
    if lowered[0] == "b":
        if len(lowered) > 1:
            raise ValueError(f"invalid suffix: '{lowered}'")
        return _to_int64(size, s)
    multiplier = _BINARY_MULTIPLIERS.get(lowered[0])
    if multiplier is None or lowered[1:] not in ("", "b", "ib"):
        raise ValueError(f"invalid suffix: '{lowered}'")
    return _to_int64(size * multiplier, s)


def _to_int64(size: float, s: str) -> int:
    if not size < 2.0**63:  # also catches inf and nan
        raise ValueError(f"invalid size: '{s}'")
    return int(size)


def _go_parse_float(num: str) -> float:
    """Decimal floats as strconv.ParseFloat reads them; Python's float() is
    more lenient (spaces, underscores), so check the shape first."""
    body = num[1:] if num[:1] in ("+", "-") else num
    mantissa, e, exponent = body.lower().partition("e")
    whole, _, frac = mantissa.partition(".")
    if exponent[:1] in ("+", "-"):
        exponent = exponent[1:]
    ok = ((whole or frac) and _all_digits(whole) and _all_digits(frac)
          and (not e or (exponent and _all_digits(exponent))))
    if not ok:
        raise ValueError(f'strconv.ParseFloat: parsing "{num}": invalid syntax')
    return float(num)


def _all_digits(s: str) -> bool:
    return s.isascii() and (s.isdigit() or not s)


def parse_rfc3339(s: str) -> float:
    """RFC 3339 timestamp (nanoseconds and offsets allowed) -> Unix time."""
    return parse_rfc3339_ns(s) / 1e9


def parse_rfc3339_ns(s: str) -> int:
    """RFC 3339 timestamp -> Unix time in integer nanoseconds, exactly."""
    p = _TimeParser(s)
    year = p.number(4, "2006")
    p.literal("-", "-01-02T15:04:05Z07:00")
    month = p.number(2, "01")
    p.literal("-", "-02T15:04:05Z07:00")
    day = p.number(2, "02")
    p.literal("T", "T15:04:05Z07:00")
    hour = p.number(2, "15")
    p.literal(":", ":04:05Z07:00")
    minute = p.number(2, "04")
    p.literal(":", ":05Z07:00")
    second = p.number(2, "05")
    nanos = 0
    if p.peek() in (".", ",") and s[p.pos + 1:p.pos + 2] in tuple("0123456789"):
        p.pos += 1
        nanos = int(p.digits()[:9].ljust(9, "0"))
    offset = 0
    if p.peek() == "Z":
        p.pos += 1
    elif p.peek() in ("+", "-"):
        sign = 1 if p.peek() == "+" else -1
        p.pos += 1
        off_hour = p.number(2, "Z07:00")
        p.literal(":", "Z07:00")
        off_min = p.number(2, "Z07:00")
        if off_hour > 23 or off_min > 59:
            p.range_error("time zone offset")
        offset = sign * (off_hour * 3600 + off_min * 60)
    else:
        p.fail("Z07:00")
    if p.pos != len(s):
        raise ValueError(f'parsing time "{s}": extra text: "{s[p.pos:]}"')
    if not 1 <= month <= 12:
        p.range_error("month")
    if not 1 <= day <= _days_in_month(year, month):
        p.range_error("day")
    if hour > 23:
        p.range_error("hour")
    if minute > 59:
        p.range_error("minute")
    if second > 59:
        p.range_error("second")
    seconds = (_days_from_civil(year, month, day) * 86400
               + hour * 3600 + minute * 60 + second - offset)
    return seconds * 1_000_000_000 + nanos


def format_rfc3339_nano(ts: float) -> str:
    """Unix time -> Go's RFC3339Nano in UTC ("2026-11-27T23:25:02.5Z").

    A float cannot hold nanoseconds for current dates, so its fraction is
    rounded to microseconds; use format_rfc3339_nano_ns for exact output."""
    micros = round(ts * 1_000_000) if isinstance(ts, float) else int(ts) * 1_000_000
    return format_rfc3339_nano_ns(micros * 1000)


def format_rfc3339_nano_ns(ns: int) -> str:
    """Unix time in nanoseconds -> Go's RFC3339Nano in UTC, trailing zeros
    of the fraction removed and no fraction at all when it is zero."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.gmtime(secs)
    out = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
           f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}")
    if frac:
        out += "." + f"{frac:09d}".rstrip("0")
    return out + "Z"


def parse_duration(s: str) -> float:
    """Go's time.ParseDuration ("1m30s", "500ms", "-1.5h") -> seconds."""
    return parse_duration_ns(s) / 1e9


def parse_duration_ns(s: str) -> int:
    """Go's time.ParseDuration -> integer nanoseconds, with Go's errors."""
    orig = s
    invalid = f"time: invalid duration {go_quote(orig)}"
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(invalid)
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise ValueError(invalid)
        i = _leading(s, "0123456789")
        pre, s = s[:i], s[i:]
        value = int(pre) if pre else 0
        if value > 1 << 63:
            raise ValueError(invalid)
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            i = _leading(s, "0123456789")
            post = i > 0
            for ch in s[:i]:
                # Like Go, ignore digits that no longer fit in an int64.
                if frac > ((1 << 63) - 1) // 10:
                    break
                frac = frac * 10 + int(ch)
                scale *= 10
            s = s[i:]
        if not pre and not post:
            raise ValueError(invalid)
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        if i == 0:
            raise ValueError(f"time: missing unit in duration {go_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {go_quote(unit_name)} in duration {go_quote(orig)}")
        if value > (1 << 63) // unit:
            raise ValueError(invalid)
        value *= unit
        if frac:
            value += int(float(frac) * (float(unit) / scale))
        total += value
        if total > 1 << 63:
            raise ValueError(invalid)
    if neg:
        return -total
    if total > _MAX_DURATION:
        raise ValueError(invalid)
    return total


def _leading(s: str, alphabet: str) -> int:
    i = 0
    while i < len(s) and s[i] in alphabet:
        i += 1
    return i


def go_quote(s: str) -> str:
    """Quote like Go's %q for the plain strings that appear in error messages."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


class _TimeParser:
    """Walks an RFC 3339 string, failing with Go's time.Parse wording."""

    __slots__ = ("pos", "s")

    def __init__(self, s: str) -> None:
        self.s = s
        self.pos = 0

    def peek(self) -> str:
        return self.s[self.pos:self.pos + 1]

    def digits(self) -> str:
        start = self.pos
        self.pos += _leading(self.s[start:], "0123456789")
        return self.s[start:self.pos]

    def number(self, width: int, layout_elem: str) -> int:
        chunk = self.s[self.pos:self.pos + width]
        if len(chunk) != width or not (chunk.isdigit() and chunk.isascii()):
            self.fail(layout_elem)
        self.pos += width
        return int(chunk)

    def literal(self, text: str, layout_rest: str) -> None:
        if not self.s.startswith(text, self.pos):
            self.fail(layout_rest)
        self.pos += len(text)

    def fail(self, layout_elem: str) -> None:
        raise ValueError(
            f'parsing time "{self.s}" as "{_RFC3339}": '
            f'cannot parse "{self.s[self.pos:]}" as "{layout_elem}"')

    def range_error(self, what: str) -> None:
        raise ValueError(f'parsing time "{self.s}": {what} out of range')
