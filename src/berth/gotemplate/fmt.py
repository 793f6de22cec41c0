"""Go's fmt for template output: how a value prints (%v, fmt.Sprint) and the printf verbs,
flags, width and precision (fmt.Sprintf), with strconv.FormatFloat's shortest digits."""

from berth.gotemplate.values import MISSING, GoStruct, sorted_keys, type_name
from berth.strconv import quote, quote_rune, quote_to_ascii

_INF = float("inf")


class _Spec:
    """One printf directive: verb, flags, width and precision."""

    __slots__ = ("verb", "plus", "minus", "sharp", "space", "zero", "plus_v", "sharp_v", "wid", "prec")

    def __init__(self, verb: str = "v") -> None:
        self.verb = verb
        self.plus = self.minus = self.sharp = self.space = self.zero = self.plus_v = self.sharp_v = False
        self.wid: int | None = None
        self.prec: int | None = None


_PLAIN_V = _Spec()


def sprint_value(value) -> str:
    """fmt.Sprint of one value (%v)."""
    if isinstance(value, str):
        return value
    if value is None:
        return "<nil>"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:d}"
    return _format(value, _PLAIN_V)


def _format(arg, spec: _Spec, depth: int = 0) -> str:
    verb = spec.verb
    if verb == "T":
        return _pad("<nil>" if arg is None or arg is MISSING else type_name(arg), spec)
    if arg is None or arg is MISSING:
        if verb == "v" or depth:
            return _pad("<nil>", spec)
        return _bad_verb(arg, verb)
    if isinstance(arg, bool):
        if verb in ("v", "t"):
            return _pad("true" if arg else "false", spec)
        return _bad_verb(arg, verb)
    if isinstance(arg, int):
        return _fmt_integer(arg, spec)
    if isinstance(arg, float):
        return _fmt_float(arg, spec)
    if isinstance(arg, str):
        return _fmt_string(arg, spec)
    if isinstance(arg, complex):
        if verb not in ("v", "e", "E", "f", "F", "g", "G"):
            return _bad_verb(arg, verb)
        imag = _Spec(verb)
        imag.plus, imag.prec = True, spec.prec
        return _pad(f"({_fmt_float(arg.real, spec)}{_fmt_float(arg.imag, imag)}i)", spec)
    if isinstance(arg, GoStruct) and arg.stringer is not None and verb in ("v", "s"):
        return _fmt_string(arg.stringer(arg), spec)
    if isinstance(arg, GoStruct):
        return _fmt_struct(arg, spec, depth)
    if isinstance(arg, dict):
        pairs = (_format(k, spec, depth + 1) + ":" + _format(arg[k], spec, depth + 1) for k in sorted_keys(arg))
        return "map[" + " ".join(pairs) + "]"
    if isinstance(arg, (list, tuple)):
        return "[" + " ".join(_format(e, spec, depth + 1) for e in arg) + "]"
    if verb in ("v", "s", "q", "x", "X"):  # like a Go Stringer
        return _fmt_string(str(arg), spec)
    return _bad_verb(arg, verb)


def _fmt_struct(arg: GoStruct, spec, depth: int) -> str:
    """{a b {c d} e}: an embedded struct's fields nested where Go declares it."""
    named = spec.plus_v or spec.sharp_v
    embedded = arg.embedded or {}
    inner = {name for _, names in embedded.values() for name in names}
    parts = []
    for key, value in arg.items():
        if key in embedded:
            type_name, names = embedded[key]
            nested = " ".join((f"{n}:" if named else "") + _format(arg[n], spec, depth + 2) for n in names)
            parts.append((f"{type_name}:" if named else "") + "{" + nested + "}")
        elif key not in inner:
            parts.append((f"{key}:" if named else "") + _format(value, spec, depth + 1))
    return "{" + " ".join(parts) + "}"


def _bad_verb(arg, verb: str) -> str:
    if arg is None or arg is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(arg)}={sprint_value(arg)})"


def _pad(s: str, spec: _Spec, zero: bool = False) -> str:
    width = spec.wid
    if width is None or len(s) >= width:
        return s
    if spec.minus:
        return s + " " * (width - len(s))
    return ("0" if zero and spec.zero else " ") * (width - len(s)) + s


_INT_BASES = {"v": 10, "d": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}


def _fmt_integer(value: int, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "c":
        return _pad(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", spec, True)
    if verb == "q":
        return _pad(quote_rune(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"), spec, True)
    if verb == "U":
        text = f"U+{value:04X}"
        if spec.sharp and 0 <= value <= 0x10FFFF and chr(value).isprintable():
            text += f" '{chr(value)}'"
        return _pad(text, spec, True)
    base = _INT_BASES.get(verb)
    if base is None:
        return _bad_verb(value, verb)
    negative = value < 0
    digits = format(-value if negative else value, {2: "b", 8: "o", 10: "d", 16: "x"}[base])
    if verb == "X":
        digits = digits.upper()
    if spec.prec is not None:
        if spec.prec == 0 and value == 0:
            return " " * (spec.wid or 0)
        digits = digits.rjust(spec.prec, "0")
    elif spec.zero and not spec.minus and spec.wid is not None:
        digits = digits.rjust(spec.wid - (1 if negative or spec.plus or spec.space else 0), "0")
    prefix = ""
    if spec.sharp:
        if base == 2:
            prefix = "0b"
        elif base == 8 and not digits.startswith("0"):
            prefix = "0"
        elif base == 16:
            prefix = "0x" if verb == "x" else "0X"
    if verb == "O":
        prefix = "0o"
    sign = "-" if negative else "+" if spec.plus else " " if spec.space else ""
    return _pad(sign + prefix + digits, spec)


def _shortest_digits(value: float) -> tuple[str, int]:
    """Shortest decimal digits of a finite value >= 0, and where the decimal point goes:
    value == 0.<digits> * 10**point."""
    mantissa, _, exp = repr(value).partition("e")
    whole, _, frac = mantissa.partition(".")
    all_digits = whole + frac
    digits = all_digits.lstrip("0")
    if not digits:
        return "0", 1
    point = len(whole) + int(exp or 0) - (len(all_digits) - len(digits))
    return digits.rstrip("0"), point


def _digits_e(digits: str, point: int, e: str = "e") -> str:
    exp = point - 1 if digits != "0" else 0
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{mantissa}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _digits_f(digits: str, point: int) -> str:
    if digits == "0":
        return "0"
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _is_negative(value: float) -> bool:
    return value < 0 or (value == 0 and repr(value)[0] == "-")


def format_float(value: float, fmt: str, prec: int) -> str:
    """strconv.FormatFloat(value, fmt, prec, 64) for finite values; prec -1 is shortest."""
    if prec >= 0:
        return format(value, f".{prec}{fmt}")
    digits, point = _shortest_digits(abs(value))
    sign = "-" if _is_negative(value) else ""
    if fmt in ("e", "E"):
        return sign + _digits_e(digits, point, fmt)
    if fmt in ("f", "F"):
        return sign + _digits_f(digits, point)
    # %g, shortest: Go switches to %e when the exponent is < -4 or >= 6 (not 21)
    if point - 1 < -4 or point - 1 >= 6:
        return sign + _digits_e(digits, point, "E" if fmt == "G" else "e")
    return sign + _digits_f(digits, point)


def _fmt_float(value: float, spec: _Spec) -> str:
    verb = spec.verb
    if verb == "v":
        fmt, prec = "g", -1
    elif verb in ("g", "G"):
        fmt, prec = verb, -1
    elif verb in ("e", "E", "f", "F"):
        fmt, prec = verb, 6
    else:
        return _bad_verb(value, verb)
    if spec.prec is not None:
        prec = spec.prec
    if value != value or value in (_INF, -_INF):
        if value != value:
            text = ("+" if spec.plus else " " if spec.space else "") + "NaN"
        else:
            text = "-Inf" if value < 0 else " Inf" if spec.space and not spec.plus else "+Inf"
        return _pad(text, spec)
    num = format_float(value, fmt, prec)
    if num[0] != "-":
        num = (" " if spec.space and not spec.plus else "+") + num
    if spec.plus or num[0] != "+":
        if spec.zero and not spec.minus and spec.wid is not None and spec.wid > len(num):
            return num[0] + "0" * (spec.wid - len(num)) + num[1:]
        return _pad(num, spec)
    return _pad(num[1:], spec, True)


def _fmt_string(s: str, spec: _Spec) -> str:
    verb = spec.verb
    if spec.prec is not None and verb in ("v", "s", "q"):
        s = s[: spec.prec]
    if verb == "v" and spec.sharp_v:
        return _pad(quote(s), spec, True)
    if verb in ("v", "s"):
        return _pad(s, spec, True)
    if verb == "q":
        if spec.sharp and "`" not in s and all(c == "\t" or c.isprintable() for c in s):
            return _pad(f"`{s}`", spec, True)
        return _pad((quote_to_ascii(s) if spec.plus else quote(s)), spec, True)
    if verb in ("x", "X"):
        data = s.encode("utf-8", "surrogatepass")
        if spec.prec is not None:
            data = data[: spec.prec]
        byte_fmt = "{:02x}" if verb == "x" else "{:02X}"
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        if spec.space:
            text = " ".join(prefix + byte_fmt.format(b) for b in data)
        else:
            text = prefix + "".join(byte_fmt.format(b) for b in data)
        return _pad(text, spec, True)
    return _bad_verb(s, verb)


def sprint(args) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_value(arg))
        prev_string = is_string
    return "".join(out)


def sprintf(fmt: str, args) -> str:
    """fmt.Sprintf: flags #0+- and space, width and precision (also *), all of Go's common verbs."""
    out = []
    n, i, argi = len(fmt), 0, 0
    while i < n:
        percent = fmt.find("%", i)
        if percent < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:percent])
        i = percent + 1
        spec = _Spec()
        while i < n and fmt[i] in "#0+- ":
            flag = fmt[i]
            if flag == "#":
                spec.sharp = True
            elif flag == "0":
                spec.zero = not spec.minus
            elif flag == "+":
                spec.plus = True
            elif flag == "-":
                spec.minus, spec.zero = True, False
            else:
                spec.space = True
            i += 1
        if i < n and fmt[i] == "*":
            i += 1
            width = args[argi] if argi < len(args) else None
            argi += 1
            if isinstance(width, int) and not isinstance(width, bool):
                if width < 0:
                    spec.minus, spec.zero, width = True, False, -width
                spec.wid = width
            else:
                out.append("%!(BADWIDTH)")
        else:
            start = i
            while i < n and "0" <= fmt[i] <= "9":
                i += 1
            if i > start:
                spec.wid = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                prec = args[argi] if argi < len(args) else None
                argi += 1
                if isinstance(prec, int) and not isinstance(prec, bool):
                    spec.prec = prec if prec >= 0 else None
                else:
                    out.append("%!(BADPREC)")
            else:
                start = i
                while i < n and "0" <= fmt[i] <= "9":
                    i += 1
                spec.prec = int(fmt[start:i] or "0")
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        spec.verb = verb
        if verb == "v":  # %+v and %#v are their own formats, not flags
            spec.plus_v, spec.plus = spec.plus, False
            spec.sharp_v, spec.sharp = spec.sharp, False
        out.append(_format(arg, spec))
    if argi < len(args):
        extra = ", ".join("<nil>" if a is None else f"{type_name(a)}={sprint_value(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


