"""Human-readable sizes, durations and timestamps, matching docker/go-units
and Go's time package (ParseDuration, Parse, RFC3339Nano) so berth prints and accepts
what docker does. berth.gotime builds docker's --since/--until values on top of it.

Cheap to import: no `re`, no `datetime`, no `calendar`, no other berth module.
"""

import time

_DECIMAL_ABBRS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_ABBRS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")
# RAMInBytes is binary whatever the suffix says: "1m", "1mb" and "1MiB" are all 1 MiB.
_BINARY_MULTIPLIERS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# FromHumanSize is decimal: "10k" is 10000 bytes (docker's json-file max-size).
_DECIMAL_MULTIPLIERS = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15}


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

RFC3339 = "2006-01-02T15:04:05Z07:00"


def _scale(size: float, base: float, abbrs: tuple[str, ...]) -> tuple[float, str]:
    i = 0
    while size >= base and i < len(abbrs) - 1:
        size /= base
        i += 1
    return size, abbrs[i]


def human_size(size: float, precision: int = 3) -> str:
    """Decimal size with `precision` significant digits, as `docker images` shows it:
    1000 -> "1kB", 4261000 -> "4.26MB" (go-units HumanSizeWithPrecision(size, 3));
    docker's progress lines use 4 (go-units HumanSize)."""
    size, unit = _scale(float(size), 1000.0, _DECIMAL_ABBRS)
    return f"{size:.{precision}g}{unit}"


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
    return _parse_size(s, _BINARY_MULTIPLIERS)


def from_human_size(s: str) -> int:
    """Parse a size like "10k", "1.5m", "1GB" (go-units FromHumanSize): decimal multipliers,
    otherwise read as ram_in_bytes reads it."""
    return _parse_size(s, _DECIMAL_MULTIPLIERS)


def _parse_size(s: str, multipliers: dict) -> int:
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
    multiplier = multipliers.get(lowered[0])
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
        raise ValueError(f"strconv.ParseFloat: parsing {_quote(num)}: invalid syntax")
    return float(num)


def _all_digits(s: str) -> bool:
    return s.isascii() and (s.isdigit() or not s)


def go_time_string(ts: float) -> str:
    """Go's time.Unix(ts, 0).String() in the local zone, as docker prints CreatedAt:
    "2026-11-27 23:25:02 +0000 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(int(ts)))


def rfc3339_seconds(ts: float) -> str:
    """Go's time.Unix(ts, 0).Format(time.RFC3339) in the local zone, as docker's history
    prints CreatedAt: "2026-11-27T23:25:02Z"."""
    local = time.localtime(int(ts))
    offset = local.tm_gmtoff or 0
    zone = "Z" if offset == 0 else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) // 60 % 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + zone


def parse_rfc3339(s: str) -> float:
    """RFC 3339 timestamp (nanoseconds and offsets allowed) -> Unix time."""
    return parse_rfc3339_ns(s) / 1e9


def parse_rfc3339_ns(s: str) -> int:
    """RFC 3339 timestamp -> Unix time in integer nanoseconds, exactly (Go's
    time.Parse(time.RFC3339, s), which also reads a fraction, with its error wording)."""
    fast = _parse_utc_fast(s)
    if fast is not None:
        return fast
    seconds, nanos = go_parse_time(RFC3339, s)
    return seconds * 1_000_000_000 + nanos


def _parse_utc_fast(s: str) -> int | None:
    """The shape berth itself writes ("2026-11-27T23:25:02.123456789Z"), without the
    general parser: `ps` reads several of these per container. None: not that shape."""
    if len(s) < 20 or s[4] != "-" or s[7] != "-" or s[10] != "T" or s[13] != ":" or s[16] != ":" or s[-1] != "Z":
        return None
    digits = s[0:4] + s[5:7] + s[8:10] + s[11:13] + s[14:16] + s[17:19]
    fraction = s[20:-1] if s[19] == "." else ""
    if s[19] == "Z" and len(s) != 20:
        return None
    if not (digits.isdigit() and digits.isascii()) or (s[19] not in ".Z") or (fraction and not (
            fraction.isdigit() and fraction.isascii())) or len(fraction) > 9 or (s[19] == "." and not fraction):
        return None
    year, month, day = int(s[0:4]), int(s[5:7]), int(s[8:10])
    hour, minute, second = int(s[11:13]), int(s[14:16]), int(s[17:19])
    if not (1 <= month <= 12 and 1 <= day <= _days_in_month(year, month) and hour < 24 and minute < 60
            and second < 60):
        return None  # let the general parser say what is wrong
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


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
    invalid = f"time: invalid duration {_quote(orig)}"
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
            raise ValueError(f"time: missing unit in duration {_quote(orig)}")
        unit_name, s = s[:i], s[i:]
        unit = _DURATION_UNITS.get(unit_name)
        if unit is None:
            raise ValueError(
                f"time: unknown unit {_quote(unit_name)} in duration {_quote(orig)}")
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


def _quote(s: str) -> str:
    from berth.strconv import quote  # lazy: only error messages need it; the supervisor imports units

    return quote(s)


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


# -- Go's time.Parse ------------------------------------------------------------------------

# The layout elements of RFC3339 and of gotime's layouts, longest first.
_ELEMENTS = (".999999999", "Z07:00", "2006", "01", "02", "15", "04", "05")
_RANGES = {"01": (1, 12, "month"), "15": (0, 23, "hour"), "04": (0, 59, "minute"), "05": (0, 59, "second")}


def go_parse_time(layout: str, value: str, local_offset: int = 0) -> tuple[int, int]:
    """Go's time.Parse (or ParseInLocation in a fixed zone `local_offset` seconds east of UTC,
    used when the layout has no zone) for layouts made of the elements above -> (Unix
    seconds, nanoseconds).
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
                raise ValueError(f"parsing time {_quote(original)}: extra text: {_quote(value)}")
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
            raise ValueError(f"parsing time {_quote(original)}: {range_error} out of range")
        if not ok:
            raise _parse_error(layout, original, element, held)
    year, month, day = fields["2006"], fields["01"], fields["02"]
    if not 1 <= day <= _days_in_month(year, month):
        raise ValueError(f"parsing time {_quote(original)}: day out of range")
    seconds = (_days_from_civil(year, month, day) * 86400
               + fields["15"] * 3600 + fields["04"] * 60 + fields["05"] - offset)
    return seconds, nanos


def _parse_error(layout: str, value: str, layout_elem: str, value_elem: str) -> ValueError:
    return ValueError(f"parsing time {_quote(value)} as {_quote(layout)}: "
                      f"cannot parse {_quote(value_elem)} as {_quote(layout_elem)}")


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
