"""Go's text/template lexer (parse/lex.go): template text -> items, ending with EOF or an
error item."""

from berth.gotemplate.values import quote

# Item types (Go's itemType).
(
    ERROR, BOOL, CHAR, CHARCONST, COMPLEX, ASSIGN, DECLARE, EOF, FIELD, IDENT, LDELIM,
    LPAREN, NUMBER, PIPE, RAWSTRING, RDELIM, RPAREN, SPACE, STRING, TEXT, VARIABLE,
) = range(21)
KEYWORD = 100  # item types above this are keywords
BLOCK, BREAK, CONTINUE, DOT, DEFINE, ELSE, END, IF, NIL, RANGE, TEMPLATE, WITH = range(101, 113)
_KEYWORDS = {
    ".": DOT, "block": BLOCK, "break": BREAK, "continue": CONTINUE, "define": DEFINE, "else": ELSE,
    "end": END, "if": IF, "nil": NIL, "range": RANGE, "template": TEMPLATE, "with": WITH,
}
_SPACES = frozenset(" \t\r\n")
_TERMINATORS = frozenset(".,|:()")


class Item:
    """One lexeme: its type, where it starts (index into the text) and on which line."""

    __slots__ = ("typ", "pos", "val", "line")

    def __init__(self, typ: int, pos: int, val: str, line: int) -> None:
        self.typ, self.pos, self.val, self.line = typ, pos, val, line

    def __str__(self) -> str:
        if self.typ == EOF:
            return "EOF"
        if self.typ == ERROR:
            return self.val
        if self.typ > KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return quote(self.val[:10]) + "..."
        return quote(self.val)


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
        self.items: list[Item] = []
        self._line, self._line_pos = 1, 0

    def run(self) -> list[Item]:
        state = self._lex_text
        while state is not None:
            state = state()
        if self.items[-1].typ == ERROR:
            self.items.append(Item(EOF, len(self.text), "EOF", self.items[-1].line))
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
        self.items.append(Item(typ, self.start, self.text[self.start : self.pos], self._line_at(self.start)))
        self.start = self.pos
        return self._lex_inside_action

    def _errorf(self, msg: str) -> None:
        self.items.append(Item(ERROR, self.start, msg, self._line_at(self.start)))
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
                self._emit(TEXT)
            self._emit(EOF)
            return None
        if x > self.pos:
            end = x
            if self._has_left_trim(x + 2):
                end = len(text[self.start : x].rstrip(" \t\r\n")) + self.start
            self.pos = end
            if end > self.start:
                self._emit(TEXT)
            self.pos = self.start = x
        return self._lex_left_delim

    def _lex_left_delim(self):
        self.pos += 2
        after = 2 if self._has_left_trim(self.pos) else 0
        if self.text.startswith("/*", self.pos + after):
            self.pos += after
            self.start = self.pos
            return self._lex_comment
        self._emit(LDELIM)
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
        self._emit(RDELIM)
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
            return self._emit(ASSIGN)
        if ch == ":":
            if self._next() != "=":
                return self._errorf("expected :=")
            return self._emit(DECLARE)
        if ch == "|":
            return self._emit(PIPE)
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
            return self._emit(LPAREN)
        if ch == ")":
            self.paren_depth -= 1
            if self.paren_depth < 0:
                return self._errorf("unexpected right paren")
            return self._emit(RPAREN)
        if ch <= "\x7f" and ch.isprintable():
            return self._emit(CHAR)
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
        return self._emit(SPACE)

    def _lex_identifier(self):
        while _is_alnum(self._next()):
            pass
        self._backup()
        word = self.text[self.start : self.pos]
        if not self._at_terminator():
            return self._errorf(f"bad character {_rune_name(self._peek())}")
        if word in _KEYWORDS:
            return self._emit(_KEYWORDS[word])
        return self._emit(BOOL if word in ("true", "false") else IDENT)

    def _lex_field(self):
        return self._lex_field_or_variable(FIELD)

    def _lex_variable(self):
        if self._at_terminator():  # just "$"
            return self._emit(VARIABLE)
        return self._lex_field_or_variable(VARIABLE)

    def _lex_field_or_variable(self, typ: int):
        if self._at_terminator():  # just "." or "$"
            return self._emit(VARIABLE if typ == VARIABLE else DOT)
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
        return self._lex_escaped("'", CHARCONST, "unterminated character constant")

    def _lex_number(self):
        if not self._scan_number():
            return self._errorf(f"bad number syntax: {quote(self.text[self.start : self.pos])}")
        if self._peek() in ("+", "-"):  # complex: 1+2i
            if not self._scan_number() or self.text[self.pos - 1] != "i":
                return self._errorf(f"bad number syntax: {quote(self.text[self.start : self.pos])}")
            return self._emit(COMPLEX)
        return self._emit(NUMBER)

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
        return self._lex_escaped('"', STRING, "unterminated quoted string")

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
        return self._emit(RAWSTRING)


def lex(text: str) -> list[Item]:
    """All of text's items; the last is EOF (after an error item when lexing failed)."""
    return _Lexer(text).run()
