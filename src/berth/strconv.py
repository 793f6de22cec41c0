"""Go's strconv where berth must print or read exactly what docker and runc do: Quote (%q
in their messages) and ParseBool (flags, options, settings). Any layer may import it; it
imports nothing, so it costs no more than its own few lines."""

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(s: str) -> str:
    """strconv.Quote (fmt's %q): "a \\"b\\"\\n" for a "b"<newline>."""
    if s.isascii() and s.isprintable():  # the common case: only \ and " need escaping
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return _quote(s, '"', False)


def quote_to_ascii(s: str) -> str:
    """strconv.QuoteToASCII (fmt's %+q): non-ASCII characters escaped too."""
    return _quote(s, '"', True)


def quote_rune(ch: str) -> str:
    """strconv.QuoteRune (fmt's %q of a rune): 'x'."""
    return _quote(ch, "'", False)


def _quote(s: str, quote_char: str, ascii_only: bool) -> str:
    out = [quote_char]
    for ch in s:
        code = ord(ch)
        if ch == quote_char or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and (code < 0x80 or not ascii_only):
            out.append(ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xDC80 <= code < 0xDD00:
            out.append(f"\\x{code - 0xDC00:02x}")  # a byte that was not UTF-8 (surrogateescape), as Go shows it
        elif 0xD800 <= code < 0xE000:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote_char)
    return "".join(out)


_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


def parse_bool(s: str) -> bool:
    """strconv.ParseBool: 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False; anything
    else raises ValueError with Go's message ('strconv.ParseBool: parsing "x": invalid syntax')."""
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"strconv.ParseBool: parsing {quote(s)}: invalid syntax")
