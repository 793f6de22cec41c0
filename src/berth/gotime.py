"""Go's time.Parse for the layouts docker's CLI uses, and docker's timetypes
(--since/--until values): only `logs` and unusual timestamps need it."""

import time

from berth.units import _days_from_civil, _days_in_month, go_quote, parse_duration_ns

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
    seconds = go_parse_int(whole)
    if not dot:
        return seconds, 0
    nanos = go_parse_int(fraction)
    return seconds, int(float(nanos) * 10.0 ** (9 - len(fraction)))


def go_parse_int(s: str) -> int:
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
    seconds = (_days_from_civil(year, month, day) * 86400
               + fields["15"] * 3600 + fields["04"] * 60 + fields["05"] - offset)
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
