"""How Python data stands for Go values in templates, and the errors templates raise."""


class TemplateError(Exception):
    """A template failed to parse or execute; str() is Go's message."""


class GoStruct(dict):
    """A dict that behaves like a Go struct: accessing a missing field is an error
    'can't evaluate field X in type <go_type>'. Its JSON (`json_fields`, optional): the
    fields in order as (field, JSON key, omitempty), as a struct's json tags rename and
    omit them; `stringer` (optional): the String() method fmt prints it with; `embedded`
    (optional): {first field: (type, fields)} of its embedded structs, whose fields it holds
    as its own (Go's promoted fields) but fmt prints nested."""

    __slots__ = ("go_type", "json_fields", "stringer", "embedded")

    def __init__(self, go_type: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.go_type = go_type
        self.json_fields = None
        self.stringer = None
        self.embedded = None

    def __repr__(self) -> str:
        return f"GoStruct({self.go_type!r}, {dict.__repr__(self)})"

    def __reduce__(self):
        return (GoStruct, (self.go_type, dict(self)))


class NilSlice(tuple):
    """A nil slice: empty, prints [], but encodes as JSON null (a nil []string in a struct)."""

    __slots__ = ()


class NilMap(dict):
    """A nil map: empty, prints map[], but encodes as JSON null."""

    __slots__ = ()


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _NoValue()


def quote(s: str) -> str:
    """strconv.Quote, for error messages and a node's String()."""
    from berth.strconv import quote as go_quote  # lazy: a template that works never quotes

    return go_quote(s)


def type_name(value) -> str:
    """The Go type a Python value stands for, as Go's error messages spell it."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, complex):
        return "complex128"
    if isinstance(value, GoStruct):
        return value.go_type
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if value is None or value is MISSING:
        return "interface {}"
    return str(getattr(value, "go_type", None) or type(value).__name__)


def sorted_keys(mapping: dict) -> list:
    try:
        return sorted(mapping)
    except TypeError:
        return sorted(mapping, key=lambda k: (type(k).__name__, str(k)))



class GoTime:
    """A time.Time decoded from RFC 3339 text: prints as Go's Time.String() ("2026-12-07
    10:51:53.277325 +0000 UTC"), encodes as the RFC 3339 text in `json`."""

    __slots__ = ("text",)
    go_type = "time.Time"

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        date, _, clock = self.text.partition("T")
        if clock.endswith(("Z", "z")):
            clock, offset, zone = clock[:-1], "+0000", "UTC"
        else:
            cut = max(clock.rfind("+"), clock.rfind("-"))
            clock, offset = clock[:cut], clock[cut:].replace(":", "")
            zone = offset  # a fixed zone without a name prints its offset, as Go's does
        whole, dot, fraction = clock.partition(".")
        fraction = fraction.rstrip("0")
        return f"{date} {whole}{'.' + fraction if fraction else ''} {offset} {zone}"


class Stringer:
    """A Go value with a String() method (a time.Duration...): prints as `text`, encodes in
    `json` as `value` (what encoding/json writes for it)."""

    __slots__ = ("value", "text", "go_type")

    def __init__(self, value, text: str, go_type: str) -> None:
        self.value, self.text, self.go_type = value, text, go_type

    def __str__(self) -> str:
        return self.text
