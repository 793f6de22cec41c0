"""Go's text/template as docker's --format uses it (with docker/cli's template functions),
and docker's `table` output aligned the way Go's text/tabwriter does it.

How Python data maps onto Go values:

- dict is a map[string]interface{}: a missing key prints "<no value>" (or, with
  missingkey_error, fails "map has no entry for key"); keys iterate and print sorted.
- GoStruct is a struct: its fields keep their order (in `json` too), it is always true,
  and a missing field is "can't evaluate field X in type T".
- list/tuple are slices; str, int, float, bool, complex are Go's basic kinds.
- None is a nil pointer: it prints "<nil>" and ".Field" on it fails "nil pointer evaluating".
- any other object is a struct with methods: ".Name" reads an attribute, or calls it with
  the action's arguments when it is callable.
"""

from __future__ import annotations

__all__ = ["GoStruct", "Template", "TemplateError", "parse", "render", "render_table"]


class TemplateError(Exception):
    """A template failed to parse or execute; str() is Go's message."""


class GoStruct(dict):
    """A dict that behaves like a Go struct: accessing a missing field is an error
    'can't evaluate field X in type <go_type>'."""

    __slots__ = ("go_type",)

    def __init__(self, go_type: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.go_type = go_type

    def __repr__(self) -> str:
        return f"GoStruct({self.go_type!r}, {dict.__repr__(self)})"

    def __reduce__(self):
        return (GoStruct, (self.go_type, dict(self)))


class _NoValue:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


_MISSING = _NoValue()
_NOFINAL = object()  # no value piped in from the previous command (Go's missingVal)
_MAX_EXEC_DEPTH = 100  # nested {{template}} calls; Python's stack is smaller than Go's
_INF = float("inf")


# ---------------------------------------------------------------------------
# Lexer (parse/lex.go): text -> items, ending with EOF or an error item.

(
    _ERROR, _BOOL, _CHAR, _CHARCONST, _COMPLEX, _ASSIGN, _DECLARE, _EOF, _FIELD, _IDENT, _LDELIM,
    _LPAREN, _NUMBER, _PIPE, _RAWSTRING, _RDELIM, _RPAREN, _SPACE, _STRING, _TEXT, _VARIABLE,
) = range(21)
_KEYWORD = 100  # item types above this are keywords
_BLOCK, _BREAK, _CONTINUE, _DOT, _DEFINE, _ELSE, _END, _IF, _NIL, _RANGE, _TEMPLATE, _WITH = range(101, 113)
_KEYWORDS = {
    ".": _DOT, "block": _BLOCK, "break": _BREAK, "continue": _CONTINUE, "define": _DEFINE, "else": _ELSE,
    "end": _END, "if": _IF, "nil": _NIL, "range": _RANGE, "template": _TEMPLATE, "with": _WITH,
}
_SPACES = frozenset(" \t\r\n")
_TERMINATORS = frozenset(".,|:()")


class _Item:
    __slots__ = ("typ", "pos", "val", "line")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ, self.pos, self.val, self.line = typ, pos, val, line

    def __str__(self) -> str:
        if self.typ == _EOF:
            return "EOF"
        if self.typ == _ERROR:
            return self.val
        if self.typ > _KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or ch.isdecimal()


def _rune_name(ch: str) -> str:
    """Go's %#U."""
    return f"U+{ord(ch):04X} '{ch}'" if ch.isprintable() else f"U+{ord(ch):04X}"


class _Lexer:
    """A state machine like Go's: each _lex_* method returns the next state."""

    __slots__ = ("text", "pos", "start", "width", "paren_depth", "items", "_line", "_line_pos")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = self.start = self.width = self.paren_depth = 0
        self.items: list[_Item] = []
        self._line, self._line_pos = 1, 0

    def run(self) -> list[_Item]:
        state = self._lex_text
        while state is not None:
            state = state()
        if self.items[-1].typ == _ERROR:
            self.items.append(_Item(_EOF, len(self.text), "EOF", self.items[-1].line))
        return self.items

    def _next(self) -> str:
        if self.pos >= len(self.text):
            self.width = 0
            return ""
        self.width = 1
        self.pos += 1
        return self.text[self.pos - 1]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _backup(self) -> None:
        self.pos -= self.width

    def _line_at(self, pos: int) -> int:
        # items start at increasing positions, so count newlines incrementally
        self._line += self.text.count("\n", self._line_pos, pos)
        self._line_pos = pos
        return self._line

    def _emit(self, typ: int):
        self.items.append(_Item(typ, self.start, self.text[self.start : self.pos], self._line_at(self.start)))
        self.start = self.pos
        return self._lex_inside_action

    def _errorf(self, msg: str) -> None:
        self.items.append(_Item(_ERROR, self.start, msg, self._line_at(self.start)))
        return None

    def _accept(self, valid: str) -> bool:
        ch = self._next()
        if ch and ch in valid:
            return True
        self._backup()
        return False

    def _accept_run(self, valid: str) -> None:
        while self._accept(valid):
            pass

    def _has_left_trim(self, pos: int) -> bool:
        return self.text[pos : pos + 1] == "-" and self.text[pos + 1 : pos + 2] in _SPACES

    def _at_right_delim(self) -> tuple[bool, bool]:
        """(at "}}", preceded by a " -" trim marker)."""
        text, pos = self.text, self.pos
        if text[pos : pos + 1] in _SPACES and text.startswith("-}}", pos + 1):
            return True, True
        return text.startswith("}}", pos), False

    def _skip_spaces(self) -> None:
        text = self.text
        while self.pos < len(text) and text[self.pos] in _SPACES:
            self.pos += 1
        self.start = self.pos

    def _lex_text(self):
        text = self.text
        x = text.find("{{", self.pos)
        if x < 0:
            self.pos = len(text)
            if self.pos > self.start:
                self._emit(_TEXT)
            self._emit(_EOF)
            return None
        if x > self.pos:
            end = x
            if self._has_left_trim(x + 2):
                end = len(text[self.start : x].rstrip(" \t\r\n")) + self.start
            self.pos = end
            if end > self.start:
                self._emit(_TEXT)
            self.pos = self.start = x
        return self._lex_left_delim

    def _lex_left_delim(self):
        self.pos += 2
        after = 2 if self._has_left_trim(self.pos) else 0
        if self.text.startswith("/*", self.pos + after):
            self.pos += after
            self.start = self.pos
            return self._lex_comment
        self._emit(_LDELIM)
        self.pos += after
        self.start = self.pos
        self.paren_depth = 0
        return self._lex_inside_action

    def _lex_comment(self):
        self.pos += 2
        x = self.text.find("*/", self.pos)
        if x < 0:
            return self._errorf("unclosed comment")
        self.pos = x + 2
        delim, trim = self._at_right_delim()
        if not delim:
            return self._errorf("comment ends before closing delimiter")
        self.pos += 4 if trim else 2
        if trim:
            self._skip_spaces()
        self.start = self.pos
        return self._lex_text

    def _lex_right_delim(self):
        _, trim = self._at_right_delim()
        if trim:
            self.pos += 2
            self.start = self.pos
        self.pos += 2
        self._emit(_RDELIM)
        if trim:
            self._skip_spaces()
        return self._lex_text

    def _lex_inside_action(self):
        delim, _ = self._at_right_delim()
        if delim:
            if self.paren_depth == 0:
                return self._lex_right_delim
            return self._errorf("unclosed left paren")
        ch = self._next()
        if ch == "":
            return self._errorf("unclosed action")
        if ch in _SPACES:
            self._backup()
            return self._lex_space
        if ch == "=":
            return self._emit(_ASSIGN)
        if ch == ":":
            if self._next() != "=":
                return self._errorf("expected :=")
            return self._emit(_DECLARE)
        if ch == "|":
            return self._emit(_PIPE)
        if ch == '"':
            return self._lex_quote
        if ch == "`":
            return self._lex_raw_quote
        if ch == "$":
            return self._lex_variable
        if ch == "'":
            return self._lex_char
        if ch == "." and self.pos < len(self.text) and not "0" <= self.text[self.pos] <= "9":
            return self._lex_field
        if ch in ".+-" or "0" <= ch <= "9":
            self._backup()
            return self._lex_number
        if _is_alnum(ch):
            self._backup()
            return self._lex_identifier
        if ch == "(":
            self.paren_depth += 1
            return self._emit(_LPAREN)
        if ch == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self._errorf("unexpected right paren")
            return self._emit(_RPAREN)
        if ch <= "\x7f" and ch.isprintable():
            return self._emit(_CHAR)
        return self._errorf(f"unrecognized character in action: {_rune_name(ch)}")

    def _lex_space(self):
        count = 0
        while self._peek() and self._peek() in _SPACES:
            self._next()
            count += 1
        # a space followed by "-}}" belongs to the trim-marked right delimiter
        if self.text.startswith("-}}", self.pos):
            self._backup()
            if count == 1:
                return self._lex_right_delim
        return self._emit(_SPACE)

    def _lex_identifier(self):
        while _is_alnum(self._next()):
            pass
        self._backup()
        word = self.text[self.start : self.pos]
        if not self._at_terminator():
            return self._errorf(f"bad character {_rune_name(self._peek())}")
        if word in _KEYWORDS:
            return self._emit(_KEYWORDS[word])
        return self._emit(_BOOL if word in ("true", "false") else _IDENT)

    def _lex_field(self):
        return self._lex_field_or_variable(_FIELD)

    def _lex_variable(self):
        if self._at_terminator():  # just "$"
            return self._emit(_VARIABLE)
        return self._lex_field_or_variable(_VARIABLE)

    def _lex_field_or_variable(self, typ: int):
        if self._at_terminator():  # just "." or "$"
            return self._emit(_VARIABLE if typ == _VARIABLE else _DOT)
        while _is_alnum(self._next()):
            pass
        self._backup()
        if not self._at_terminator():
            return self._errorf(f"bad character {_rune_name(self._peek())}")
        return self._emit(typ)

    def _at_terminator(self) -> bool:
        ch = self._peek()
        return ch == "" or ch in _SPACES or ch in _TERMINATORS or self.text.startswith("}}", self.pos)

    def _lex_char(self):
        return self._lex_escaped("'", _CHARCONST, "unterminated character constant")

    def _lex_number(self):
        if not self._scan_number():
            return self._errorf(f"bad number syntax: {_go_quote(self.text[self.start : self.pos])}")
        if self._peek() in ("+", "-"):  # complex: 1+2i
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                return self._errorf(f"bad number syntax: {_go_quote(self.text[self.start : self.pos])}")
            return self._emit(_COMPLEX)
        return self._emit(_NUMBER)

    def _scan_number(self) -> bool:
        self._accept("+-")
        digits = "0123456789_"
        if self._accept("0"):
            if self._accept("xX"):
                digits = "0123456789abcdefABCDEF_"
            elif self._accept("oO"):
                digits = "01234567_"
            elif self._accept("bB"):
                digits = "01_"
        self._accept_run(digits)
        if self._accept("."):
            self._accept_run(digits)
        if len(digits) == 11 and self._accept("eE"):
            self._accept("+-")
            self._accept_run("0123456789_")
        if len(digits) == 23 and self._accept("pP"):
            self._accept("+-")
            self._accept_run("0123456789_")
        self._accept("i")
        if _is_alnum(self._peek()):
            self._next()
            return False
        return True

    def _lex_quote(self):
        return self._lex_escaped('"', _STRING, "unterminated quoted string")

    def _lex_escaped(self, close: str, token, unterminated: str):
        """A '...' or "..." literal with backslash escapes, on one line."""
        while True:
            ch = self._next()
            if ch == "\\":
                ch = self._next()
                if ch and ch != "\n":
                    continue
            if ch == "" or ch == "\n":
                return self._errorf(unterminated)
            if ch == close:
                return self._emit(token)

    def _lex_raw_quote(self):
        end = self.text.find("`", self.pos)
        if end < 0:
            return self._errorf("unterminated raw quoted string")
        self.pos = end + 1
        return self._emit(_RAWSTRING)


# ---------------------------------------------------------------------------
# Literals (strconv.Unquote, strconv.UnquoteChar, strconv.ParseInt/ParseFloat).


class _SyntaxError(Exception):
    pass


_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _unquote_char(s: str, i: int, quote: str) -> tuple[int, bool, int]:
    """Decode one (possibly escaped) character at s[i]: (value, is_raw_byte, next index)."""
    ch = s[i]
    if ch == quote:
        raise _SyntaxError
    if ch != "\\":
        return ord(ch), False, i + 1
    if i + 1 >= len(s):
        raise _SyntaxError
    ch, i = s[i + 1], i + 2
    if ch in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[ch], False, i
    if ch in ("x", "u", "U"):
        n = {"x": 2, "u": 4, "U": 8}[ch]
        digits = s[i : i + n]
        if len(digits) < n or not all(d in _HEX_DIGITS for d in digits):
            raise _SyntaxError
        value = int(digits, 16)
        if ch == "x":
            return value, True, i + n
        if value > 0x10FFFF or 0xD800 <= value < 0xE000:
            raise _SyntaxError
        return value, False, i + n
    if "0" <= ch <= "7":
        digits = s[i - 1 : i + 2]
        if len(digits) < 3 or not all("0" <= d <= "7" for d in digits):
            raise _SyntaxError
        value = int(digits, 8)
        if value > 255:
            raise _SyntaxError
        return value, True, i + 2
    if ch in ("'", '"') and ch == quote:
        return ord(ch), False, i
    raise _SyntaxError


def _unquote(s: str) -> str:
    if len(s) < 2 or s[0] != s[-1]:
        raise _SyntaxError
    quote, body = s[0], s[1:-1]
    if quote == "`":
        if "`" in body:
            raise _SyntaxError
        return body.replace("\r", "")
    if quote != '"' or "\n" in body:
        raise _SyntaxError
    if "\\" not in body:
        if '"' in body:
            raise _SyntaxError
        return body
    buf = bytearray()
    i = 0
    while i < len(body):
        value, is_byte, i = _unquote_char(body, i, '"')
        if is_byte:
            buf.append(value)
        else:
            buf += chr(value).encode("utf-8", "surrogatepass")
    return buf.decode("utf-8", "replace")


def _parse_go_int(text: str, signed: bool) -> int | None:
    """strconv.ParseInt(text, 0, 64) / ParseUint; None when it fails."""
    s, negative = text, False
    if signed and s[:1] in ("+", "-"):
        negative, s = s[0] == "-", s[1:]
    base = 10
    if len(s) > 1 and s[0] == "0":
        prefix = s[1].lower()
        base = {"x": 16, "o": 8, "b": 2}.get(prefix, 8)
        s = s[2:] if prefix in ("x", "o", "b") else s[1:]
        if s.startswith("_"):  # an underscore may follow a base prefix
            s = s[1:]
    if not s or s[0] in "+-_ ":
        return None
    try:
        value = int(s, base)
    except ValueError:
        return None
    if negative:
        value = -value
    if signed:
        return value if -(1 << 63) <= value < (1 << 63) else None
    return value if value < (1 << 64) else None


def _parse_go_float(text: str) -> float | None:
    try:
        value = float.fromhex(text.replace("_", "")) if "x" in text.lower() else float(text)
    except ValueError:
        return None
    return None if value in (_INF, -_INF) else value


# ---------------------------------------------------------------------------
# Parse tree (parse/node.go). str(node) is Go's String(), used in error messages.


class _Node:
    __slots__ = ("pos",)


class _Text(_Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text

    def __str__(self) -> str:
        return self.text


class _List(_Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list | None = None) -> None:
        self.pos, self.nodes = pos, nodes if nodes is not None else []

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class _Pipe(_Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line, self.is_assign = pos, line, False
        self.decl: list[_Variable] = []
        self.cmds: list[_Command] = []

    def __str__(self) -> str:
        decl = ""
        if self.decl:
            decl = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return decl + " | ".join(str(c) for c in self.cmds)


class _Action(_Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: _Pipe) -> None:
        self.pos, self.line, self.pipe = pos, line, pipe

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


class _Command(_Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        self.pos, self.args = pos, []

    def __str__(self) -> str:
        return " ".join(f"({a})" if type(a) is _Pipe else str(a) for a in self.args)


class _Field(_Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return "".join("." + name for name in self.ident)


class _Variable(_Node):
    __slots__ = ("ident",)  # ["$x", "Field", ...]

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class _Chain(_Node):
    __slots__ = ("node", "field")  # (pipeline).Field1.Field2

    def __init__(self, pos: int, node: _Node) -> None:
        self.pos, self.node, self.field = pos, node, []

    def __str__(self) -> str:
        head = f"({self.node})" if type(self.node) is _Pipe else str(self.node)
        return head + "".join("." + name for name in self.field)


class _Identifier(_Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class _Dot(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class _Nil(_Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class _Bool(_Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        self.pos, self.value = pos, value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class _Number(_Node):
    __slots__ = ("text", "is_int", "is_uint", "is_float", "is_complex", "int_val", "float_val", "complex_val")

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int_val, self.float_val, self.complex_val = 0, 0.0, 0j

    def __str__(self) -> str:
        return self.text

    def set_int(self, value: int) -> None:
        self.is_int = self.is_float = True
        self.is_uint = value >= 0
        self.int_val, self.float_val = value, float(value)

    def set_complex(self, value: complex) -> None:
        self.is_complex, self.complex_val = True, value
        if value.imag == 0:  # Go's simplifyComplex
            self.is_float, self.float_val = True, value.real
            if value.real == int(value.real) and -(1 << 63) <= value.real < (1 << 63):
                self.set_int(int(value.real))


class _String(_Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos, self.quoted, self.text = pos, quoted, text

    def __str__(self) -> str:
        return self.quoted


class _Branch(_Node):
    """{{if}}, {{range}} or {{with}}."""

    __slots__ = ("keyword", "line", "pipe", "list", "else_list")

    def __init__(self, keyword: str, pipe: _Pipe, body: _List, else_list: _List | None) -> None:
        self.keyword, self.pos, self.line = keyword, pipe.pos, pipe.line
        self.pipe, self.list, self.else_list = pipe, body, else_list

    def __str__(self) -> str:
        text = f"{{{{{self.keyword} {self.pipe}}}}}{self.list}"
        if self.else_list is not None:
            text += f"{{{{else}}}}{self.else_list}"
        return text + "{{end}}"


class _TemplateCall(_Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: _Pipe | None) -> None:
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self) -> str:
        if self.pipe is None:
            return f"{{{{template {_go_quote(self.name)}}}}}"
        return f"{{{{template {_go_quote(self.name)} {self.pipe}}}}}"


class _Keyword(_Node):
    """{{break}}, {{continue}}, and the {{end}} / {{else}} the parser stops at."""

    __slots__ = ("word",)

    def __init__(self, pos: int, word: str) -> None:
        self.pos, self.word = pos, word

    def __str__(self) -> str:
        return f"{{{{{self.word}}}}}"


def _is_keyword(node, word: str) -> bool:
    return type(node) is _Keyword and node.word == word


def _is_empty_tree(node) -> bool:
    if type(node) is _List:
        return all(_is_empty_tree(n) for n in node.nodes)
    return type(node) is _Text and not node.text.strip()


# ---------------------------------------------------------------------------
# Parser (parse/parse.go): items -> one _List per template name.

_OPERAND_START = frozenset(
    (_BOOL, _CHARCONST, _COMPLEX, _DOT, _FIELD, _IDENT, _NUMBER, _NIL, _RAWSTRING, _STRING, _VARIABLE, _LPAREN)
)
_LITERALS = (_Bool, _Dot, _Nil, _Number, _String)


class _Parser:
    def __init__(self, name: str, items: list[_Item], trees: dict) -> None:
        self.name, self.items, self.trees = name, items, trees
        self.last = len(items) - 1
        self.i = 0
        self.seen = 0  # furthest item read, whose line Go reports in parse errors
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0

    # -- item stream with look-ahead

    def peek(self) -> _Item:
        i = min(self.i, self.last)
        self.seen = max(self.seen, i)
        return self.items[i]

    def next(self) -> _Item:
        item = self.peek()
        self.i += 1
        return item

    def backup(self) -> None:
        self.i -= 1

    def next_non_space(self) -> _Item:
        item = self.next()
        while item.typ == _SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> _Item:
        item = self.next_non_space()
        self.backup()
        return item

    def errorf(self, msg: str):
        raise TemplateError(f"template: {self.name}:{self.items[self.seen].line}: {msg}")

    def expect(self, typ: int, context: str) -> _Item:
        item = self.next_non_space()
        if item.typ != typ:
            self.unexpected(item, context)
        return item

    def unexpected(self, item: _Item, context: str):
        if item.typ == _ERROR:
            extra = ""
            if self.action_line and self.action_line != item.line:
                extra = f" in action started at {self.name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(item.val + extra)
        self.errorf(f"unexpected {item} in {context}")

    def unquote(self, quoted: str) -> str:
        try:
            return _unquote(quoted)
        except _SyntaxError:
            self.errorf("invalid syntax")

    def add(self, name: str, root: _List) -> None:
        old = self.trees.get(name)
        if old is None or _is_empty_tree(old):
            self.trees[name] = root
        elif not _is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {_go_quote(name)}")

    def in_new_tree(self, parse_body):
        """Definitions get their own variables and range depth, like Go's new Tree."""
        saved = self.vars, self.range_depth
        self.vars, self.range_depth = ["$"], 0
        try:
            return parse_body()
        finally:
            self.vars, self.range_depth = saved

    # -- grammar

    def parse(self) -> None:
        root = _List(self.peek().pos)
        while self.peek().typ != _EOF:
            if self.peek().typ == _LDELIM:
                start = self.i
                self.next()
                if self.next_non_space().typ == _DEFINE:
                    self.in_new_tree(self.definition)
                    continue
                self.i = start
            node = self.text_or_action()
            if type(node) is _Keyword and node.word in ("end", "else"):
                self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self.add(self.name, root)

    def definition(self) -> None:
        context = "define clause"
        item = self.next_non_space()
        if item.typ not in (_STRING, _RAWSTRING):
            self.unexpected(item, context)
        name = self.unquote(item.val)
        self.expect(_RDELIM, context)
        body, end = self.item_list()
        if not _is_keyword(end, "end"):
            self.errorf(f"unexpected {end} in {context}")
        self.add(name, body)

    def item_list(self) -> tuple[_List, _Keyword]:
        """Nodes up to an {{end}} or {{else}}, which is returned separately."""
        body = _List(self.peek_non_space().pos)
        while self.peek_non_space().typ != _EOF:
            node = self.text_or_action()
            if type(node) is _Keyword and node.word in ("end", "else"):
                return body, node
            body.nodes.append(node)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> _Node:
        item = self.next_non_space()
        if item.typ == _TEXT:
            return _Text(item.pos, item.val)
        if item.typ == _LDELIM:
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(item, "input")

    def action(self) -> _Node:
        item = self.next_non_space()
        typ = item.typ
        if typ == _BLOCK:
            return self.block_control()
        if typ in (_BREAK, _CONTINUE):
            return self.loop_control(item)
        if typ == _ELSE:
            return self.else_control()
        if typ == _END:
            return _Keyword(self.expect(_RDELIM, "end").pos, "end")
        if typ == _IF:
            return self.if_control()
        if typ == _RANGE:
            return self.range_control()
        if typ == _TEMPLATE:
            return self.template_control()
        if typ == _WITH:
            return self.with_control()
        self.backup()
        item = self.peek()
        return _Action(item.pos, item.line, self.pipeline("command", _RDELIM))

    def loop_control(self, keyword: _Item) -> _Keyword:
        word = keyword.val
        item = self.next_non_space()
        if item.typ != _RDELIM:
            self.unexpected(item, f"{{{{{word}}}}}")
        if self.range_depth == 0:
            self.errorf(f"{{{{{word}}}}} outside {{{{range}}}}")
        return _Keyword(keyword.pos, word)

    def else_control(self) -> _Keyword:
        peek = self.peek_non_space()
        if peek.typ in (_IF, _WITH):  # "else if" / "else with": leave the keyword pending
            return _Keyword(peek.pos, "else")
        return _Keyword(self.expect(_RDELIM, "else").pos, "else")

    def parse_control(self, context: str) -> tuple[_Pipe, _List, _List | None]:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, _RDELIM)
            if context == "range":
                self.range_depth += 1
            body, end = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if end.word == "else":
                # {{if a}}x{{else if b}}y{{end}} is {{if a}}x{{else}}{{if b}}y{{end}}{{end}}
                if context == "if" and self.peek().typ == _IF:
                    self.next()
                    else_list = _List(end.pos, [self.if_control()])
                elif context == "with" and self.peek().typ == _WITH:
                    self.next()
                    else_list = _List(end.pos, [self.with_control()])
                else:
                    else_list, end = self.item_list()
                    if not _is_keyword(end, "end"):
                        self.errorf(f"expected end; found {end}")
            return pipe, body, else_list
        finally:
            del self.vars[mark:]

    def if_control(self) -> _Branch:
        return _Branch("if", *self.parse_control("if"))

    def range_control(self) -> _Branch:
        return _Branch("range", *self.parse_control("range"))

    def with_control(self) -> _Branch:
        return _Branch("with", *self.parse_control("with"))

    def template_name(self, item: _Item, context: str) -> str:
        if item.typ not in (_STRING, _RAWSTRING):
            self.unexpected(item, context)
        return self.unquote(item.val)

    def block_control(self) -> _TemplateCall:
        context = "block clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = self.pipeline(context, _RDELIM)

        def body() -> None:
            root, end = self.item_list()
            if not _is_keyword(end, "end"):
                self.errorf(f"unexpected {end} in {context}")
            self.add(name, root)

        self.in_new_tree(body)
        return _TemplateCall(item.pos, item.line, name, pipe)

    def template_control(self) -> _TemplateCall:
        context = "template clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = None
        if self.next_non_space().typ != _RDELIM:
            self.backup()
            pipe = self.pipeline(context, _RDELIM)
        return _TemplateCall(item.pos, item.line, name, pipe)

    def pipeline(self, context: str, end: int) -> _Pipe:
        item = self.peek_non_space()
        pipe = _Pipe(item.pos, item.line)
        while True:  # declarations: $x := / $x = / $i, $e :=
            var = self.peek_non_space()
            if var.typ != _VARIABLE:
                break
            start = self.i
            self.next()
            after = self.peek_non_space()
            if after.typ in (_ASSIGN, _DECLARE):
                pipe.is_assign = after.typ == _ASSIGN
                self.next_non_space()
                pipe.decl.append(_Variable(var.pos, [var.val]))
                self.vars.append(var.val)
            elif after.typ == _CHAR and after.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (_VARIABLE, _RDELIM, _RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            else:
                self.i = start
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ not in _OPERAND_START:
                self.unexpected(item, context)
            self.backup()
            pipe.cmds.append(self.command())

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], _LITERALS):
                self.errorf(f"non executable command in pipeline stage {stage}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == _SPACE:
                continue
            if item.typ in (_RDELIM, _RPAREN):
                self.backup()
            elif item.typ != _PIPE:
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None or self.peek().typ != _FIELD:
            return node
        chain = _Chain(self.peek().pos, node)
        while self.peek().typ == _FIELD:
            chain.field.append(self.next().val[1:])
        # like Go, .X.Y and $x.Y stay fields/variables, positioned at the chain
        if type(node) is _Field:
            return _Field(chain.pos, node.ident + chain.field)
        if type(node) is _Variable:
            return _Variable(chain.pos, node.ident + chain.field)
        if isinstance(node, _LITERALS):
            self.errorf(f"unexpected . after term {_go_quote(str(node))}")
        return chain

    def term(self) -> _Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == _IDENT:
            if item.val not in _BUILTINS:
                self.errorf(f"function {_go_quote(item.val)} not defined")
            return _Identifier(item.pos, item.val)
        if typ == _DOT:
            return _Dot(item.pos)
        if typ == _NIL:
            return _Nil(item.pos)
        if typ == _VARIABLE:
            var = _Variable(item.pos, item.val.split("."))
            if var.ident[0] not in self.vars:
                self.errorf(f"undefined variable {_go_quote(var.ident[0])}")
            return var
        if typ == _FIELD:
            return _Field(item.pos, item.val[1:].split("."))
        if typ == _BOOL:
            return _Bool(item.pos, item.val == "true")
        if typ in (_CHARCONST, _COMPLEX, _NUMBER):
            return self.number(item)
        if typ == _LPAREN:
            return self.pipeline("parenthesized pipeline", _RPAREN)
        if typ in (_STRING, _RAWSTRING):
            return _String(item.pos, item.val, self.unquote(item.val))
        self.backup()
        return None

    def number(self, item: _Item) -> _Number:
        text = item.val
        node = _Number(item.pos, text)
        if item.typ == _CHARCONST:
            try:
                value, _, end = _unquote_char(text, 1, "'")
            except (_SyntaxError, IndexError):
                self.errorf("invalid syntax")
            if text[end:] != "'":
                self.errorf(f"malformed character constant: {text}")
            node.set_int(value)
            return node
        if item.typ == _COMPLEX or text.endswith("i"):
            try:
                value = complex(text.replace("_", "")[:-1] + "j")
            except ValueError:
                self.errorf(f"illegal number syntax: {_go_quote(text)}")
            node.set_complex(value)
            return node
        value = _parse_go_int(text, signed=True)
        if value is not None:
            node.set_int(value)
            return node
        unsigned = _parse_go_int(text, signed=False)
        if unsigned is not None:  # fits uint64 but not int64
            node.is_uint = node.is_float = True
            node.float_val = float(unsigned)
            return node
        value = _parse_go_float(text)
        if value is None:
            self.errorf(f"illegal number syntax: {_go_quote(text)}")
        if not any(c in text for c in ".eEpP"):
            self.errorf(f"integer overflow: {_go_quote(text)}")
        node.is_float, node.float_val = True, value
        if value == int(value) and -(1 << 63) <= value < (1 << 63):
            node.is_int, node.int_val = True, int(value)
            node.is_uint = value >= 0
        return node


# ---------------------------------------------------------------------------
# Printing values like Go's fmt (%v and the printf verbs).


class _Spec:
    """One printf directive: verb, flags, width and precision."""

    __slots__ = ("verb", "plus", "minus", "sharp", "space", "zero", "plus_v", "sharp_v", "wid", "prec")

    def __init__(self, verb: str = "v") -> None:
        self.verb = verb
        self.plus = self.minus = self.sharp = self.space = self.zero = self.plus_v = self.sharp_v = False
        self.wid: int | None = None
        self.prec: int | None = None


_PLAIN_V = _Spec()
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def _go_quote(s: str, quote: str = '"', ascii_only: bool = False) -> str:
    """strconv.Quote (or QuoteRune with quote="'", QuoteToASCII with ascii_only)."""
    out = [quote]
    for ch in s:
        code = ord(ch)
        if ch == quote or ch == "\\":
            out.append("\\" + ch)
        elif ch.isprintable() and (code < 0x80 or not ascii_only):
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0xD800 <= code < 0xE000:
            out.append("\\ufffd")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(quote)
    return "".join(out)


def _type_name(value) -> str:
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
    if value is None or value is _MISSING:
        return "interface {}"
    return str(getattr(value, "go_type", None) or type(value).__name__)


def _sorted_keys(mapping: dict) -> list:
    try:
        return sorted(mapping)
    except TypeError:
        return sorted(mapping, key=lambda k: (type(k).__name__, str(k)))


def _fmt_v(value) -> str:
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
        return _pad("<nil>" if arg is None or arg is _MISSING else _type_name(arg), spec)
    if arg is None or arg is _MISSING:
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
    if isinstance(arg, GoStruct):
        named = spec.plus_v or spec.sharp_v
        fields = ((f"{k}:" if named else "") + _format(v, spec, depth + 1) for k, v in arg.items())
        return "{" + " ".join(fields) + "}"
    if isinstance(arg, dict):
        pairs = (_format(k, spec, depth + 1) + ":" + _format(arg[k], spec, depth + 1) for k in _sorted_keys(arg))
        return "map[" + " ".join(pairs) + "]"
    if isinstance(arg, (list, tuple)):
        return "[" + " ".join(_format(e, spec, depth + 1) for e in arg) + "]"
    if verb in ("v", "s", "q", "x", "X"):  # like a Go Stringer
        return _fmt_string(str(arg), spec)
    return _bad_verb(arg, verb)


def _bad_verb(arg, verb: str) -> str:
    if arg is None or arg is _MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_type_name(arg)}={_fmt_v(arg)})"


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
        return _pad(_go_quote(chr(value) if 0 <= value <= 0x10FFFF else "\ufffd", "'"), spec, True)
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


def _format_float(value: float, fmt: str, prec: int) -> str:
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
    num = _format_float(value, fmt, prec)
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
        return _pad(_go_quote(s), spec, True)
    if verb in ("v", "s"):
        return _pad(s, spec, True)
    if verb == "q":
        if spec.sharp and "`" not in s and all(c == "\t" or c.isprintable() for c in s):
            return _pad(f"`{s}`", spec, True)
        return _pad(_go_quote(s, ascii_only=spec.plus), spec, True)
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


def _sprint(args) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out = []
    prev_string = False
    for i, arg in enumerate(args):
        is_string = isinstance(arg, str)
        if i and not is_string and not prev_string:
            out.append(" ")
        out.append(_fmt_v(arg))
        prev_string = is_string
    return "".join(out)


def _sprintf(fmt: str, args) -> str:
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
        extra = ", ".join("<nil>" if a is None else f"{_type_name(a)}={_fmt_v(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# ---------------------------------------------------------------------------
# JSON like docker's `json` function: encoding/json with SetEscapeHTML(false).


class _Unsupported(Exception):
    pass


_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_JSON_ESCAPES.update({
    0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
    ord('"'): '\\"', ord("\\"): "\\\\", 0x2028: "\\u2028", 0x2029: "\\u2029",
})


def _json_quote(s: str) -> str:
    return '"' + s.translate(_JSON_ESCAPES) + '"'


def _json_float(value: float) -> str:
    if value != value or value in (_INF, -_INF):
        raise _Unsupported
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = _format_float(value, "e", -1)
        if text[-4:-1] == "e-0":  # Go writes e-7, not e-07
            text = text[:-2] + text[-1]
        return text
    return _format_float(value, "f", -1)


def _json_encode(value, out: list) -> None:
    if value is None or value is _MISSING:
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(f"{value:d}")
    elif isinstance(value, float):
        out.append(_json_float(value))
    elif isinstance(value, str):
        out.append(_json_quote(value))
    elif isinstance(value, dict):
        # struct fields keep their order; Go sorts map keys
        keys = list(value) if isinstance(value, GoStruct) else sorted(value, key=str)
        out.append("{")
        for i, key in enumerate(keys):
            if i:
                out.append(",")
            out.append(_json_quote(str(key)) + ":")
            _json_encode(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _json_encode(item, out)
        out.append("]")
    else:
        out.append(_json_quote(str(value)))


# ---------------------------------------------------------------------------
# Functions: text/template's builtins and docker/cli's templates.basicFunctions.


class _CallError(Exception):
    """A function returned an error; the template fails with "error calling <name>: ..."."""


class _Func:
    """params are Go parameter kinds: "val" (reflect.Value: a missing value stays missing),
    "any" (interface{}: missing becomes nil), "str", "int", "strs" ([]string).
    variadic is the kind of the ... parameter, or None."""

    __slots__ = ("impl", "params", "variadic")

    def __init__(self, impl, params: tuple, variadic: str | None = None) -> None:
        self.impl, self.params, self.variadic = impl, params, variadic


_KIND_GO_TYPE = {"val": "reflect.Value", "any": "interface {}", "str": "string", "int": "int", "strs": "[]string"}
_PLAIN_TYPES = (str, int, float, complex, list, tuple, dict, bytes, type(None))


def _truth(value) -> bool:
    """Go's truth: false, 0, nil, and empty strings, slices and maps are false; structs are true."""
    if value is None or value is _MISSING:
        return False
    if isinstance(value, GoStruct):
        return True
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    if isinstance(value, (int, float, complex)):
        return value != 0
    return True


def _fn_not(value) -> bool:
    return not _truth(value)


def _fn_len(value) -> int:
    if value is None or value is _MISSING:
        raise _CallError("len of nil pointer")
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))  # Go counts bytes
    if isinstance(value, (list, tuple, dict)) and not isinstance(value, GoStruct):
        return len(value)
    raise _CallError(f"len of type {_type_name(value)}")


def _index_arg(index, cap: int) -> int:
    if index is None or index is _MISSING:
        raise _CallError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise _CallError(f"cannot index slice/array with type {_type_name(index)}")
    if index < 0 or index > cap:
        raise _CallError(f"index out of range: {index}")
    return index


def _fn_index(item, *indexes):
    if item is None or item is _MISSING:
        raise _CallError("index of untyped nil")
    for index in indexes:
        if item is None or item is _MISSING:
            raise _CallError("index of nil pointer")
        if isinstance(item, (str, list, tuple)):
            if isinstance(item, str):
                item = item.encode("utf-8", "surrogatepass")  # Go indexes a string's bytes
            x = _index_arg(index, len(item))
            if x == len(item):
                raise _CallError(f"index out of range: {x}")
            item = item[x]
        elif isinstance(item, dict) and not isinstance(item, GoStruct):
            if index is None or index is _MISSING:
                raise _CallError("value is nil; should be of type string")
            if isinstance(index, (list, dict)):
                raise _CallError(f"value has type {_type_name(index)}; should be string")
            if index in item:
                item = item[index]
            elif all(isinstance(v, str) for v in item.values()):
                # a map of strings (docker's Labels, Options) gives the zero string
                item = ""
            else:
                item = _MISSING
        else:
            raise _CallError(f"can't index item of type {_type_name(item)}")
    return item


def _fn_slice(item, *indexes):
    if item is None or item is _MISSING:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        data = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple)):
        data = item
    else:
        raise _CallError(f"can't slice item of type {_type_name(item)}")
    idx = [0, len(data), len(data)]
    for i, index in enumerate(indexes):
        idx[i] = _index_arg(index, len(data))
    if idx[0] > idx[1]:
        raise _CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:
        raise _CallError(f"invalid slice index: {idx[1]} > {idx[2]}")
    result = data[idx[0] : idx[1]]
    return result.decode("utf-8", "replace") if isinstance(item, str) else result


def _basic_kind(value) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, complex):
        return "complex"
    return None


def _is_nil(value) -> bool:
    return value is None or value is _MISSING


def _fn_eq(arg1, *others) -> bool:
    if not others:
        raise _CallError("missing argument for comparison")
    kind1 = _basic_kind(arg1)
    for arg in others:
        kind2 = _basic_kind(arg)
        if kind1 != kind2:
            if not _is_nil(arg1) and not _is_nil(arg):
                raise _CallError("incompatible types for comparison")
            truth = False
        elif kind1 is not None:
            truth = arg1 == arg
        elif _is_nil(arg1) or _is_nil(arg):
            truth = _is_nil(arg1) and _is_nil(arg)
        elif _type_name(arg1) != _type_name(arg):
            raise _CallError(
                f"non-comparable types {_fmt_v(arg1)}: {_type_name(arg1)}, {_type_name(arg)}: {_fmt_v(arg)}"
            )
        elif isinstance(arg, (list, tuple)) or (isinstance(arg, dict) and not isinstance(arg, GoStruct)):
            raise _CallError(f"non-comparable type {_fmt_v(arg)}: {_type_name(arg)}")
        else:
            truth = arg1 == arg
        if truth:
            return True
    return False


def _fn_ne(arg1, arg2) -> bool:
    return not _fn_eq(arg1, arg2)


def _fn_lt(arg1, arg2) -> bool:
    kind1, kind2 = _basic_kind(arg1), _basic_kind(arg2)
    if kind1 is None or kind2 is None:
        raise _CallError("invalid type for comparison")
    if kind1 != kind2:
        raise _CallError("incompatible types for comparison")
    if kind1 in ("bool", "complex"):
        raise _CallError("invalid type for comparison")
    return arg1 < arg2


def _fn_le(arg1, arg2) -> bool:
    return _fn_lt(arg1, arg2) or _fn_eq(arg1, arg2)


def _fn_gt(arg1, arg2) -> bool:
    return not _fn_le(arg1, arg2)


def _fn_ge(arg1, arg2) -> bool:
    return not _fn_lt(arg1, arg2)


def _fn_print(*args) -> str:
    return _sprint(args)


def _fn_println(*args) -> str:
    return " ".join(_fmt_v(a) for a in args) + "\n"


def _fn_printf(fmt: str, *args) -> str:
    return _sprintf(fmt, args)


def _escaper_input(args) -> str:
    """What html, js and urlquery escape: the one string, or fmt.Sprint of the arguments."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _sprint(["<no value>" if a is None else a for a in args])


_HTML_ESCAPES = {
    0: "\ufffd", ord('"'): "&#34;", ord("'"): "&#39;", ord("&"): "&amp;",
    ord("<"): "&lt;", ord(">"): "&gt;",
}
_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}
_URL_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def _fn_html(*args) -> str:
    return _escaper_input(args).translate(_HTML_ESCAPES)


def _fn_js(*args) -> str:
    out = []
    for ch in _escaper_input(args):
        if ch in _JS_ESCAPES:
            out.append(_JS_ESCAPES[ch])
        elif ch < " " or (ch >= "\x80" and not ch.isprintable()):
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _fn_urlquery(*args) -> str:
    out = []
    for byte in _escaper_input(args).encode("utf-8", "surrogatepass"):
        ch = chr(byte)
        out.append(ch if ch in _URL_UNRESERVED else "+" if ch == " " else f"%{byte:02X}")
    return "".join(out)


def _fn_json(value) -> str:
    out: list[str] = []
    try:
        _json_encode(value, out)
    except _Unsupported:
        return ""  # docker ignores the encoder's error and prints nothing
    return "".join(out)


def _fn_split(s: str, sep: str) -> list:
    return list(s) if sep == "" else s.split(sep)


def _fn_join(items, sep: str) -> str:
    return sep.join(e if isinstance(e, str) else _fmt_v(e) for e in items or ())


def _is_word_separator(ch: str) -> bool:
    """strings.Title's isSeparator."""
    if ch < "\x80":
        return not (ch.isalnum() or ch == "_")
    if ch.isalpha() or ch.isdecimal():
        return False
    return ch.isspace()


def _fn_title(s: str) -> str:
    """strings.Title: upper-case the first letter of each word, leave the rest alone."""
    out = []
    prev = " "
    for ch in s:
        if _is_word_separator(prev):
            title = ch.title()
            out.append(title if len(title) == 1 else ch)
        else:
            out.append(ch)
        prev = ch
    return "".join(out)


def _fn_pad(s: str, prefix: int, suffix: int) -> str:
    if s == "":
        return s
    if prefix < 0 or suffix < 0:
        raise _CallError("strings: negative Repeat count")
    return " " * prefix + s + " " * suffix


def _fn_truncate(s: str, length: int) -> str:
    if len(s) < length:
        return s
    if length < 0:
        raise _CallError(f"runtime error: slice bounds out of range [:{length}]")
    return s[:length]


_BUILTINS = {
    "and": _Func(None, ("val",), "val"),  # short-circuits: evaluated by the executor
    "or": _Func(None, ("val",), "val"),
    "not": _Func(_fn_not, ("val",)),
    "len": _Func(_fn_len, ("val",)),
    "index": _Func(_fn_index, ("val",), "val"),
    "slice": _Func(_fn_slice, ("val",), "val"),
    "print": _Func(_fn_print, (), "any"),
    "printf": _Func(_fn_printf, ("str",), "any"),
    "println": _Func(_fn_println, (), "any"),
    "html": _Func(_fn_html, (), "any"),
    "js": _Func(_fn_js, (), "any"),
    "urlquery": _Func(_fn_urlquery, (), "any"),
    "eq": _Func(_fn_eq, ("val",), "val"),
    "ne": _Func(_fn_ne, ("val", "val")),
    "lt": _Func(_fn_lt, ("val", "val")),
    "le": _Func(_fn_le, ("val", "val")),
    "gt": _Func(_fn_gt, ("val", "val")),
    "ge": _Func(_fn_ge, ("val", "val")),
    # docker/cli templates.basicFunctions
    "json": _Func(_fn_json, ("any",)),
    "split": _Func(_fn_split, ("str", "str")),
    "join": _Func(_fn_join, ("strs", "str")),
    "title": _Func(_fn_title, ("str",)),
    "lower": _Func(str.lower, ("str",)),
    "upper": _Func(str.upper, ("str",)),
    "pad": _Func(_fn_pad, ("str", "int", "int")),
    "truncate": _Func(_fn_truncate, ("str", "int")),
}


def _header_value(value, *_ignored):
    return value


# docker/cli templates.HeaderFunctions: table headers stay as written (pad still pads)
_HEADER_FUNCS = dict(
    _BUILTINS,
    json=_Func(_header_value, ("str",)),
    split=_Func(_header_value, ("str", "str")),
    join=_Func(_header_value, ("str", "str")),
    title=_Func(_header_value, ("str",)),
    lower=_Func(_header_value, ("str",)),
    upper=_Func(_header_value, ("str",)),
    truncate=_Func(_header_value, ("str", "int")),
)


# ---------------------------------------------------------------------------
# Executor (exec.go).


class _BreakLoop(Exception):
    pass


class _ContinueLoop(Exception):
    pass


def _position(text: str, pos: int) -> tuple[int, int]:
    """Go's ErrorContext: 1-based line, and the byte offset of pos within its line."""
    before = text[:pos]
    line_start = before.rfind("\n") + 1
    return before.count("\n") + 1, len(before[line_start:].encode("utf-8", "surrogatepass"))


class _Exec:
    __slots__ = ("tmpl", "name", "funcs", "missingkey_error", "out", "node", "vars", "depth")

    def __init__(self, tmpl: Template, funcs: dict, missingkey_error: bool, out: list) -> None:
        self.tmpl, self.name, self.funcs = tmpl, tmpl.name, funcs
        self.missingkey_error, self.out = missingkey_error, out
        self.node = None  # the node being evaluated, for error messages
        self.vars: list[list] = []  # [name, value] pairs, innermost last
        self.depth = 0

    def errorf(self, msg: str):
        node = self.node
        if node is None:
            raise TemplateError(f"template: {self.name}: {msg}")
        line, col = _position(self.tmpl.text, node.pos)
        raise TemplateError(
            f"template: {self.tmpl.name}:{line}:{col}: executing {_go_quote(self.name)} at <{node}>: {msg}"
        )

    def var_value(self, name: str):
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry[1]
        self.errorf(f"undefined variable: {name}")

    def set_var(self, name: str, value) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                return
        self.errorf(f"undefined variable: {name}")

    # -- walking the tree

    def walk(self, dot, node: _Node) -> None:
        self.node = node
        kind = type(node)
        if kind is _Text:
            self.out.append(node.text)
        elif kind is _List:
            for child in node.nodes:
                self.walk(dot, child)
        elif kind is _Action:
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:  # declarations print nothing
                self.node = node
                self.out.append("<no value>" if value is _MISSING else _fmt_v(value))
        elif kind is _Branch:
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif kind is _TemplateCall:
            self.walk_template(dot, node)
        elif node.word == "break":
            raise _BreakLoop
        else:
            raise _ContinueLoop

    def walk_if_or_with(self, dot, node: _Branch) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if _truth(value):
                self.walk(value if node.keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, node: _Branch) -> None:
        self.node = node
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if not self.range_over(value, node):
                if node.else_list is not None:
                    self.walk(dot, node.else_list)
        except _BreakLoop:
            pass
        finally:
            del self.vars[mark:]

    def range_over(self, value, node: _Branch) -> bool:
        """Run the body for each element; False when there was none."""
        if value is None or value is _MISSING:
            return False  # like a nil map
        if isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                self.errorf(f"can't use {value} to iterate over more than one variable")
            pairs = ((_MISSING, i) for i in range(value))
        elif isinstance(value, (list, tuple)):
            pairs = enumerate(value)
        elif isinstance(value, dict) and not isinstance(value, GoStruct):
            pairs = ((k, value[k]) for k in _sorted_keys(value))
        else:
            self.errorf(f"range can't iterate over {_fmt_v(value)}")
        ran = False
        for index, elem in pairs:
            ran = True
            self.one_iteration(node, index, elem)
        return ran

    def one_iteration(self, node: _Branch, index, elem) -> None:
        decl, mark = node.pipe.decl, len(self.vars)
        # with one variable it gets the element; with two, the index then the element
        if node.pipe.is_assign:
            if len(decl) == 1:
                self.set_var(decl[0].ident[0], elem)
            elif decl:
                self.set_var(decl[0].ident[0], index)
                self.set_var(decl[1].ident[0], elem)
        elif decl:
            self.vars[-1][1] = elem
            if len(decl) > 1:
                self.vars[-2][1] = index
        try:
            self.walk(elem, node.list)
        except _ContinueLoop:
            pass
        finally:
            del self.vars[mark:]

    def walk_template(self, dot, node: _TemplateCall) -> None:
        self.node = node
        tree = self.tmpl.trees.get(node.name)
        if tree is None:
            self.errorf(f"template {_go_quote(node.name)} not defined")
        if self.depth >= _MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_EXEC_DEPTH})")
        dot = self.eval_pipeline(dot, node.pipe)
        saved = self.name, self.vars
        # no dynamic scoping: the called template sees only $ (its dot)
        self.name, self.vars = node.name, [["$", dot]]
        self.depth += 1
        try:
            self.walk(dot, tree)
        finally:
            self.name, self.vars = saved
            self.depth -= 1

    # -- evaluating pipelines, commands and arguments

    def eval_pipeline(self, dot, pipe: _Pipe | None):
        if pipe is None:
            return _MISSING
        self.node = pipe
        value = _NOFINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)  # each result is the next command's last argument
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value])
        return value

    def not_a_function(self, args: list, final) -> None:
        if len(args) > 1 or final is not _NOFINAL:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot, cmd: _Command, final):
        first = cmd.args[0]
        kind = type(first)
        if kind is _Field:
            return self.eval_field_node(dot, first, cmd.args, final)
        if kind is _Chain:
            return self.eval_chain_node(dot, first, cmd.args, final)
        if kind is _Identifier:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if kind is _Pipe:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if kind is _Variable:
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if kind is _Bool:
            return first.value
        if kind is _Dot:
            return dot
        if kind is _Nil:
            self.errorf("nil is not a command")
        if kind is _Number:
            return self.ideal_constant(first)
        return first.text

    def ideal_constant(self, number: _Number):
        """A number literal's value where no parameter type decides: its syntax does."""
        self.node = number
        text = number.text
        if number.is_complex:
            return number.complex_val
        is_hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and "p" not in text.lower()
        if number.is_float and not is_hex_int and text[0] != "'" and any(c in text for c in ".eEpP"):
            return number.float_val
        if number.is_int:
            return number.int_val
        if number.is_uint:
            self.errorf(f"{text} overflows int")
        return _MISSING

    def eval_field_node(self, dot, field: _Field, args, final):
        self.node = field
        return self.eval_field_chain(dot, dot, field, field.ident, args, final)

    def eval_chain_node(self, dot, chain: _Chain, args, final):
        self.node = chain
        if type(chain.node) is _Nil:
            self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, "val", chain.node)
        return self.eval_field_chain(dot, receiver, chain, chain.field, args, final)

    def eval_variable_node(self, dot, var: _Variable, args, final):
        self.node = var
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node: _Node, ident: list, args, final):
        from_map = False  # values read from a map are interface{} to Go
        for name in ident[:-1]:
            value = self.eval_field(dot, name, node, None, _NOFINAL, receiver, from_map)
            from_map = isinstance(receiver, dict) and not isinstance(receiver, GoStruct)
            receiver = value
        return self.eval_field(dot, ident[-1], node, args, final, receiver, from_map)

    def eval_field(self, dot, name: str, node: _Node, args, final, receiver, from_map: bool):
        if receiver is _MISSING:
            if self.missingkey_error:
                self.errorf(f"nil data; no entry for key {_go_quote(name)}")
            return _MISSING
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        has_args = (args is not None and len(args) > 1) or final is not _NOFINAL
        if isinstance(receiver, GoStruct):
            if name in receiver:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.go_type}")
        if isinstance(receiver, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.missingkey_error:
                self.errorf(f"map has no entry for key {_go_quote(name)}")
            return _MISSING
        if not isinstance(receiver, _PLAIN_TYPES) and not name.startswith("_"):
            try:
                attr = getattr(receiver, name)
            except AttributeError:
                attr = _MISSING
            if attr is not _MISSING:
                if callable(attr):
                    return self.call_method(dot, attr, node, name, args, final)
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return attr
        type_name = "interface {}" if from_map else _type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {type_name}")

    def call_method(self, dot, method, node: _Node, name: str, args, final):
        argv = [self.eval_arg(dot, "any", arg) for arg in (args[1:] if args else ())]
        if final is not _NOFINAL:
            argv.append(None if final is _MISSING else final)
        try:
            return method(*argv)
        except TemplateError:
            raise
        except Exception as err:  # like Go's safeCall: the method's failure fails the template
            self.node = node
            self.errorf(f"error calling {name}: {err}")

    def eval_function(self, dot, ident: _Identifier, cmd: _Node, args, final):
        self.node = ident
        return self.eval_call(dot, self.funcs[ident.name], cmd, ident.name, args, final)

    def eval_call(self, dot, func: _Func, node: _Node, name: str, args, final):
        args = args[1:] if args else []
        num_in = len(args) + (final is not _NOFINAL)
        params = func.params
        if func.variadic is not None:
            if num_in < len(params):
                self.errorf(f"wrong number of args for {name}: want at least {len(params)} got {len(args)}")
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")
        if func.impl is None:  # and/or: stop at the first false/true argument and return it
            want = name == "or"
            value = _MISSING
            for arg in args:
                value = self.eval_arg(dot, "val", arg)
                if _truth(value) == want:
                    return value
            return final if final is not _NOFINAL else value
        argv = [self.eval_arg(dot, params[i] if i < len(params) else func.variadic, a) for i, a in enumerate(args)]
        if final is not _NOFINAL:
            i = len(args)
            argv.append(self.validate(final, params[i] if i < len(params) else func.variadic))
        try:
            return func.impl(*argv)
        except _CallError as err:
            self.node = node
            self.errorf(f"error calling {name}: {err}")

    def eval_arg(self, dot, kind: str, node: _Node):
        self.node = node
        t = type(node)
        if t is _Dot:
            return self.validate(dot, kind)
        if t is _Nil:
            if kind == "val":
                return _MISSING
            if kind in ("any", "strs"):
                return None
            self.errorf(f"cannot assign nil to {_KIND_GO_TYPE[kind]}")
        if t is _Field:
            return self.validate(self.eval_field_node(dot, node, [node], _NOFINAL), kind)
        if t is _Variable:
            return self.validate(self.eval_variable_node(dot, node, None, _NOFINAL), kind)
        if t is _Pipe:
            return self.validate(self.eval_pipeline(dot, node), kind)
        if t is _Identifier:
            return self.validate(self.eval_function(dot, node, node, None, _NOFINAL), kind)
        if t is _Chain:
            return self.validate(self.eval_chain_node(dot, node, None, _NOFINAL), kind)
        if kind in ("val", "any"):
            if t is _Bool:
                return node.value
            if t is _Number:
                return self.ideal_constant(node)
            return node.text
        if kind == "str":
            if t is _String:
                return node.text
            self.errorf(f"expected string; found {node}")
        if kind == "int":
            if t is _Number and node.is_int:
                return node.int_val
            self.errorf(f"expected integer; found {node}")
        self.errorf(f"can't handle {node} for arg of type {_KIND_GO_TYPE[kind]}")

    def validate(self, value, kind: str):
        """Go's validateType: can this value be passed as a parameter of that kind?"""
        if kind == "val":
            return value
        if kind == "any":
            return None if value is _MISSING else value
        if value is _MISSING:
            if kind == "strs":
                return None
            self.errorf(f"invalid value; expected {_KIND_GO_TYPE[kind]}")
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "strs" and (value is None or isinstance(value, (list, tuple))):
            return value
        self.errorf(f"wrong type for value; expected {_KIND_GO_TYPE[kind]}; got {_type_name(value)}")


# ---------------------------------------------------------------------------
# Public API.


class Template:
    """A parsed template: the main one and those it {{define}}s."""

    __slots__ = ("name", "text", "trees")

    def __init__(self, name: str, text: str, trees: dict) -> None:
        self.name, self.text, self.trees = name, text, trees

    def execute(self, data, missingkey_error: bool = False) -> str:
        out: list[str] = []
        self._run(data, missingkey_error, _BUILTINS, out)
        return "".join(out)

    def _run(self, data, missingkey_error: bool, funcs: dict, out: list) -> None:
        """Execute into out, which keeps whatever was written before an error."""
        if data is None:
            data = _MISSING  # Go's reflect.ValueOf(nil)
        state = _Exec(self, funcs, missingkey_error, out)
        state.vars.append(["$", data])
        try:
            state.walk(data, self.trees[self.name])
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth") from None


def parse(text: str, name: str = "") -> Template:
    """Parse a template; syntax errors raise TemplateError with Go's message."""
    trees: dict[str, _List] = {}
    try:
        _Parser(name, _Lexer(text).run(), trees).parse()
    except RecursionError:
        raise TemplateError(f"template: {name}:1: max expression depth exceeded") from None
    return Template(name, text, trees)


def render(text: str, data, missingkey_error: bool = False) -> str:
    return parse(text).execute(data, missingkey_error)


def render_table(text: str, rows: list, header: dict | None = None) -> str:
    """docker's formatter: a "table ..." format prints a header line (the template run on
    header, a {field: column title} dict, with docker's header functions; None prints no
    header) and then the rows, aligned like tabwriter.NewWriter(out, 10, 1, 3, ' ', 0).
    Any other format prints each row on its own line. As in docker, surrounding spaces are
    trimmed and the two-character sequences \\t and \\n mean a tab and a newline."""
    table = text.startswith("table")
    fmt = text[len("table") :] if table else text
    fmt = fmt.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    tmpl = parse(fmt)
    out: list[str] = []
    if table and header is not None:
        try:
            tmpl._run(header, False, _HEADER_FUNCS, out)
        except TemplateError:
            pass  # docker ignores a header that fails and keeps what it printed
        out.append("\n")
    for row in rows:
        tmpl._run(row, False, _BUILTINS, out)
        out.append("\n")
    result = "".join(out)
    return _tabwrite(result) if table else result


# ---------------------------------------------------------------------------
# text/tabwriter with flags 0: cells end at a tab, lines at a newline; a column is a
# run of consecutive lines that have a cell in it, as wide as its widest cell plus
# padding (at least minwidth). A line's last cell is not part of any column.


def _tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    sections = text.split("\f")  # a form feed ends a line and flushes, as in Go
    formatted = [_tab_format(s + "\n", minwidth, padding) for s in sections[:-1]]
    formatted.append(_tab_format(sections[-1], minwidth, padding))
    return "".join(formatted)


def _tab_format(text: str, minwidth: int, padding: int) -> str:
    lines = [line.replace("\v", "\t").split("\t") for line in text.split("\n")]
    out: list[str] = []
    widths: list[int] = []

    def write_lines(start: int, end: int) -> None:
        for i in range(start, end):
            for j, cell in enumerate(lines[i]):
                out.append(cell)
                if j < len(widths):
                    out.append(" " * (widths[j] - len(cell)))
            if i + 1 < len(lines):
                out.append("\n")

    def format_block(start: int, end: int) -> None:
        column = len(widths)
        line = start
        while line < end:
            if column >= len(lines[line]) - 1:
                line += 1
                continue
            # a block of lines with a cell in this column starts here
            write_lines(start, line)
            start = line
            width = minwidth
            while line < end and column < len(lines[line]) - 1:
                width = max(width, len(lines[line][column]) + padding)
                line += 1
            widths.append(width)
            format_block(start, line)
            widths.pop()
            start = line
        write_lines(start, end)

    format_block(0, len(lines))
    return "".join(out)
