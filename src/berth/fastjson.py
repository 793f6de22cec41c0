"""JSON through the C accelerator `_json`, without importing `json`.

`import json` pulls in `re` and `enum` (~8 ms here), paid by every berth command that
reads a record; the C scanner and encoder behind it need neither."""

import _json


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float
    memo = {}


_scan = _json.make_scanner(_Context())
_encode = _json.make_encoder(None, None, _json.encode_basestring, None, ":", ",", False, False, True)
_WHITESPACE = " \t\n\r"


def loads(text: str | bytes):
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as err:
        raise ValueError(f"invalid JSON at offset {err.value}") from None
    except SystemError:  # _json raises some errors (an unterminated string) as json.decoder's
        # JSONDecodeError, which it finds only if `json` was imported: else this, and no message
        raise ValueError("invalid JSON") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data in JSON at offset {end}")
    return value



def loads_object(text: str | bytes) -> dict:
    """JSON text that must be an object (a config file, a manifest): ValueError otherwise."""
    value = loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value

def dumps(value, indent: int | str | None = None) -> str:
    """Compact JSON (`{"a":1}`) like Go's json.Marshal; with `indent` (a number of spaces, or
    the string to indent with, as the stdlib takes it), json.MarshalIndent's layout (the
    stdlib's with indent=, ensure_ascii=False)."""
    if indent is not None:
        return _indented(value, indent if isinstance(indent, str) else " " * indent, "\n")
    return "".join(_encode(value, 0))


def _indented(value, step: str, newline: str) -> str:
    inner = newline + step
    if isinstance(value, dict) and value:
        items = (_encode(_key(k), 0)[0] + ": " + _indented(v, step, inner) for k, v in value.items())
        return "{" + inner + ("," + inner).join(items) + newline + "}"
    if isinstance(value, (list, tuple)) and value:
        return "[" + inner + ("," + inner).join(_indented(v, step, inner) for v in value) + newline + "]"
    return "".join(_encode(value, 0))


def _key(key) -> str:
    """A key as the stdlib writes a non-string one (True -> "true", None -> "null")."""
    if isinstance(key, str):
        return key
    return "".join(_encode(key, 0)) if key is None or isinstance(key, bool) else str(key)
