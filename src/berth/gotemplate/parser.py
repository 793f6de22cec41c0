"""Go's text/template parser (parse/parse.go and parse/node.go): lexer items -> one tree of
nodes per template name. str(node) is Go's String(), used in error messages. Literals are
read as Go reads them (strconv.Unquote, UnquoteChar, ParseInt, ParseFloat)."""

import berth.gotemplate.lexer as lx
from berth.gotemplate.values import TemplateError, quote

_INF = float("inf")


# ---------------------------------------------------------------------------
# Literals (strconv.Unquote, strconv.UnquoteChar, strconv.ParseInt/ParseFloat).


class _SyntaxError(Exception):
    pass


_SIMPLE_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "\\": 92}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _unquote_char(s: str, i: int, closing: str) -> tuple[int, bool, int]:
    """Decode one (possibly escaped) character at s[i]: (value, is_raw_byte, next index)."""
    ch = s[i]
    if ch == closing:
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
    if ch in ("'", '"') and ch == closing:
        return ord(ch), False, i
    raise _SyntaxError


def _unquote(s: str) -> str:
    if len(s) < 2 or s[0] != s[-1]:
        raise _SyntaxError
    closing, body = s[0], s[1:-1]
    if closing == "`":
        if "`" in body:
            raise _SyntaxError
        return body.replace("\r", "")
    if closing != '"' or "\n" in body:
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


class Node:
    __slots__ = ("pos",)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        self.pos, self.text = pos, text

    def __str__(self) -> str:
        return self.text


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list | None = None) -> None:
        self.pos, self.nodes = pos, nodes if nodes is not None else []

    def __str__(self) -> str:
        return "".join(str(n) for n in self.nodes)


class PipeNode(Node):
    __slots__ = ("line", "is_assign", "decl", "cmds")

    def __init__(self, pos: int, line: int) -> None:
        self.pos, self.line, self.is_assign = pos, line, False
        self.decl: list[VariableNode] = []
        self.cmds: list[CommandNode] = []

    def __str__(self) -> str:
        decl = ""
        if self.decl:
            decl = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return decl + " | ".join(str(c) for c in self.cmds)


class ActionNode(Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: PipeNode) -> None:
        self.pos, self.line, self.pipe = pos, line, pipe

    def __str__(self) -> str:
        return f"{{{{{self.pipe}}}}}"


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        self.pos, self.args = pos, []

    def __str__(self) -> str:
        return " ".join(f"({a})" if type(a) is PipeNode else str(a) for a in self.args)


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return "".join("." + name for name in self.ident)


class VariableNode(Node):
    __slots__ = ("ident",)  # ["$x", "Field", ...]

    def __init__(self, pos: int, ident: list[str]) -> None:
        self.pos, self.ident = pos, ident

    def __str__(self) -> str:
        return ".".join(self.ident)


class ChainNode(Node):
    __slots__ = ("node", "field")  # (pipeline).Field1.Field2

    def __init__(self, pos: int, node: Node) -> None:
        self.pos, self.node, self.field = pos, node, []

    def __str__(self) -> str:
        head = f"({self.node})" if type(self.node) is PipeNode else str(self.node)
        return head + "".join("." + name for name in self.field)


class IdentifierNode(Node):
    __slots__ = ("name",)

    def __init__(self, pos: int, name: str) -> None:
        self.pos, self.name = pos, name

    def __str__(self) -> str:
        return self.name


class DotNode(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return "nil"


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        self.pos, self.value = pos, value

    def __str__(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
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


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        self.pos, self.quoted, self.text = pos, quoted, text

    def __str__(self) -> str:
        return self.quoted


class BranchNode(Node):
    """{{if}}, {{range}} or {{with}}."""

    __slots__ = ("keyword", "line", "pipe", "list", "else_list")

    def __init__(self, keyword: str, pipe: PipeNode, body: ListNode, else_list: ListNode | None) -> None:
        self.keyword, self.pos, self.line = keyword, pipe.pos, pipe.line
        self.pipe, self.list, self.else_list = pipe, body, else_list

    def __str__(self) -> str:
        text = f"{{{{{self.keyword} {self.pipe}}}}}{self.list}"
        if self.else_list is not None:
            text += f"{{{{else}}}}{self.else_list}"
        return text + "{{end}}"


class TemplateNode(Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: PipeNode | None) -> None:
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self) -> str:
        if self.pipe is None:
            return f"{{{{template {quote(self.name)}}}}}"
        return f"{{{{template {quote(self.name)} {self.pipe}}}}}"


class KeywordNode(Node):
    """{{break}}, {{continue}}, and the {{end}} / {{else}} the parser stops at."""

    __slots__ = ("word",)

    def __init__(self, pos: int, word: str) -> None:
        self.pos, self.word = pos, word

    def __str__(self) -> str:
        return f"{{{{{self.word}}}}}"


def _is_keyword(node, word: str) -> bool:
    return type(node) is KeywordNode and node.word == word


def _is_empty_tree(node) -> bool:
    if type(node) is ListNode:
        return all(_is_empty_tree(n) for n in node.nodes)
    return type(node) is TextNode and not node.text.strip()


# ---------------------------------------------------------------------------
# Parser (parse/parse.go): items -> one ListNode per template name.

_OPERAND_START = frozenset(
    (lx.BOOL, lx.CHARCONST, lx.COMPLEX, lx.DOT, lx.FIELD, lx.IDENT, lx.NUMBER, lx.NIL, lx.RAWSTRING, lx.STRING,
     lx.VARIABLE, lx.LPAREN)
)
_LITERALS = (BoolNode, DotNode, NilNode, NumberNode, StringNode)


def parse_trees(name: str, text: str, funcs) -> dict:
    """{template name: ListNode} for text and the templates it defines; `funcs` are the
    function names the template may call. Syntax errors raise TemplateError with Go's message."""
    trees: dict[str, ListNode] = {}
    try:
        _Parser(name, lx.lex(text), trees, funcs).parse()
    except RecursionError:
        raise TemplateError(f"template: {name}:1: max expression depth exceeded") from None
    return trees


class _Parser:
    def __init__(self, name: str, items: list[lx.Item], trees: dict, funcs) -> None:
        self.name, self.items, self.trees, self.funcs = name, items, trees, funcs
        self.last = len(items) - 1
        self.i = 0
        self.seen = 0  # furthest item read, whose line Go reports in parse errors
        self.vars = ["$"]
        self.range_depth = 0
        self.action_line = 0

    # -- item stream with look-ahead

    def peek(self) -> lx.Item:
        i = min(self.i, self.last)
        self.seen = max(self.seen, i)
        return self.items[i]

    def next(self) -> lx.Item:
        item = self.peek()
        self.i += 1
        return item

    def backup(self) -> None:
        self.i -= 1

    def next_non_space(self) -> lx.Item:
        item = self.next()
        while item.typ == lx.SPACE:
            item = self.next()
        return item

    def peek_non_space(self) -> lx.Item:
        item = self.next_non_space()
        self.backup()
        return item

    def errorf(self, msg: str):
        raise TemplateError(f"template: {self.name}:{self.items[self.seen].line}: {msg}")

    def expect(self, typ: int, context: str) -> lx.Item:
        item = self.next_non_space()
        if item.typ != typ:
            self.unexpected(item, context)
        return item

    def unexpected(self, item: lx.Item, context: str):
        if item.typ == lx.ERROR:
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

    def add(self, name: str, root: ListNode) -> None:
        old = self.trees.get(name)
        if old is None or _is_empty_tree(old):
            self.trees[name] = root
        elif not _is_empty_tree(root):
            self.errorf(f"template: multiple definition of template {quote(name)}")

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
        root = ListNode(self.peek().pos)
        while self.peek().typ != lx.EOF:
            if self.peek().typ == lx.LDELIM:
                start = self.i
                self.next()
                if self.next_non_space().typ == lx.DEFINE:
                    self.in_new_tree(self.definition)
                    continue
                self.i = start
            node = self.text_or_action()
            if type(node) is KeywordNode and node.word in ("end", "else"):
                self.errorf(f"unexpected {node}")
            root.nodes.append(node)
        self.add(self.name, root)

    def definition(self) -> None:
        context = "define clause"
        item = self.next_non_space()
        if item.typ not in (lx.STRING, lx.RAWSTRING):
            self.unexpected(item, context)
        name = self.unquote(item.val)
        self.expect(lx.RDELIM, context)
        body, end = self.item_list()
        if not _is_keyword(end, "end"):
            self.errorf(f"unexpected {end} in {context}")
        self.add(name, body)

    def item_list(self) -> tuple[ListNode, KeywordNode]:
        """Nodes up to an {{end}} or {{else}}, which is returned separately."""
        body = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != lx.EOF:
            node = self.text_or_action()
            if type(node) is KeywordNode and node.word in ("end", "else"):
                return body, node
            body.nodes.append(node)
        self.errorf("unexpected EOF")

    def text_or_action(self) -> Node:
        item = self.next_non_space()
        if item.typ == lx.TEXT:
            return TextNode(item.pos, item.val)
        if item.typ == lx.LDELIM:
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(item, "input")

    def action(self) -> Node:
        item = self.next_non_space()
        typ = item.typ
        if typ == lx.BLOCK:
            return self.block_control()
        if typ in (lx.BREAK, lx.CONTINUE):
            return self.loop_control(item)
        if typ == lx.ELSE:
            return self.else_control()
        if typ == lx.END:
            return KeywordNode(self.expect(lx.RDELIM, "end").pos, "end")
        if typ == lx.IF:
            return self.if_control()
        if typ == lx.RANGE:
            return self.range_control()
        if typ == lx.TEMPLATE:
            return self.template_control()
        if typ == lx.WITH:
            return self.with_control()
        self.backup()
        item = self.peek()
        return ActionNode(item.pos, item.line, self.pipeline("command", lx.RDELIM))

    def loop_control(self, keyword: lx.Item) -> KeywordNode:
        word = keyword.val
        item = self.next_non_space()
        if item.typ != lx.RDELIM:
            self.unexpected(item, f"{{{{{word}}}}}")
        if self.range_depth == 0:
            self.errorf(f"{{{{{word}}}}} outside {{{{range}}}}")
        return KeywordNode(keyword.pos, word)

    def else_control(self) -> KeywordNode:
        peek = self.peek_non_space()
        if peek.typ in (lx.IF, lx.WITH):  # "else if" / "else with": leave the keyword pending
            return KeywordNode(peek.pos, "else")
        return KeywordNode(self.expect(lx.RDELIM, "else").pos, "else")

    def parse_control(self, context: str) -> tuple[PipeNode, ListNode, ListNode | None]:
        mark = len(self.vars)
        try:
            pipe = self.pipeline(context, lx.RDELIM)
            if context == "range":
                self.range_depth += 1
            body, end = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if end.word == "else":
                # {{if a}}x{{else if b}}y{{end}} is {{if a}}x{{else}}{{if b}}y{{end}}{{end}}
                if context == "if" and self.peek().typ == lx.IF:
                    self.next()
                    else_list = ListNode(end.pos, [self.if_control()])
                elif context == "with" and self.peek().typ == lx.WITH:
                    self.next()
                    else_list = ListNode(end.pos, [self.with_control()])
                else:
                    else_list, end = self.item_list()
                    if not _is_keyword(end, "end"):
                        self.errorf(f"expected end; found {end}")
            return pipe, body, else_list
        finally:
            del self.vars[mark:]

    def if_control(self) -> BranchNode:
        return BranchNode("if", *self.parse_control("if"))

    def range_control(self) -> BranchNode:
        return BranchNode("range", *self.parse_control("range"))

    def with_control(self) -> BranchNode:
        return BranchNode("with", *self.parse_control("with"))

    def template_name(self, item: lx.Item, context: str) -> str:
        if item.typ not in (lx.STRING, lx.RAWSTRING):
            self.unexpected(item, context)
        return self.unquote(item.val)

    def block_control(self) -> TemplateNode:
        context = "block clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = self.pipeline(context, lx.RDELIM)

        def body() -> None:
            root, end = self.item_list()
            if not _is_keyword(end, "end"):
                self.errorf(f"unexpected {end} in {context}")
            self.add(name, root)

        self.in_new_tree(body)
        return TemplateNode(item.pos, item.line, name, pipe)

    def template_control(self) -> TemplateNode:
        context = "template clause"
        item = self.next_non_space()
        name = self.template_name(item, context)
        pipe = None
        if self.next_non_space().typ != lx.RDELIM:
            self.backup()
            pipe = self.pipeline(context, lx.RDELIM)
        return TemplateNode(item.pos, item.line, name, pipe)

    def pipeline(self, context: str, end: int) -> PipeNode:
        item = self.peek_non_space()
        pipe = PipeNode(item.pos, item.line)
        while True:  # declarations: $x := / $x = / $i, $e :=
            var = self.peek_non_space()
            if var.typ != lx.VARIABLE:
                break
            start = self.i
            self.next()
            after = self.peek_non_space()
            if after.typ in (lx.ASSIGN, lx.DECLARE):
                pipe.is_assign = after.typ == lx.ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
            elif after.typ == lx.CHAR and after.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(var.pos, [var.val]))
                self.vars.append(var.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (lx.VARIABLE, lx.RDELIM, lx.RPAREN):
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

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for stage, cmd in enumerate(pipe.cmds[1:], start=2):
            if isinstance(cmd.args[0], _LITERALS):
                self.errorf(f"non executable command in pipeline stage {stage}")

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == lx.SPACE:
                continue
            if item.typ in (lx.RDELIM, lx.RPAREN):
                self.backup()
            elif item.typ != lx.PIPE:
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None or self.peek().typ != lx.FIELD:
            return node
        chain = ChainNode(self.peek().pos, node)
        while self.peek().typ == lx.FIELD:
            chain.field.append(self.next().val[1:])
        # like Go, .X.Y and $x.Y stay fields/variables, positioned at the chain
        if type(node) is FieldNode:
            return FieldNode(chain.pos, node.ident + chain.field)
        if type(node) is VariableNode:
            return VariableNode(chain.pos, node.ident + chain.field)
        if isinstance(node, _LITERALS):
            self.errorf(f"unexpected . after term {quote(str(node))}")
        return chain

    def term(self) -> Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == lx.IDENT:
            if item.val not in self.funcs:
                self.errorf(f"function {quote(item.val)} not defined")
            return IdentifierNode(item.pos, item.val)
        if typ == lx.DOT:
            return DotNode(item.pos)
        if typ == lx.NIL:
            return NilNode(item.pos)
        if typ == lx.VARIABLE:
            var = VariableNode(item.pos, item.val.split("."))
            if var.ident[0] not in self.vars:
                self.errorf(f"undefined variable {quote(var.ident[0])}")
            return var
        if typ == lx.FIELD:
            return FieldNode(item.pos, item.val[1:].split("."))
        if typ == lx.BOOL:
            return BoolNode(item.pos, item.val == "true")
        if typ in (lx.CHARCONST, lx.COMPLEX, lx.NUMBER):
            return self.number(item)
        if typ == lx.LPAREN:
            return self.pipeline("parenthesized pipeline", lx.RPAREN)
        if typ in (lx.STRING, lx.RAWSTRING):
            return StringNode(item.pos, item.val, self.unquote(item.val))
        self.backup()
        return None

    def number(self, item: lx.Item) -> NumberNode:
        text = item.val
        node = NumberNode(item.pos, text)
        if item.typ == lx.CHARCONST:
            try:
                value, _, end = _unquote_char(text, 1, "'")
            except (_SyntaxError, IndexError):
                self.errorf("invalid syntax")
            if text[end:] != "'":
                self.errorf(f"malformed character constant: {text}")
            node.set_int(value)
            return node
        if item.typ == lx.COMPLEX or text.endswith("i"):
            try:
                value = complex(text.replace("_", "")[:-1] + "j")
            except ValueError:
                self.errorf(f"illegal number syntax: {quote(text)}")
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
            self.errorf(f"illegal number syntax: {quote(text)}")
        if not any(c in text for c in ".eEpP"):
            self.errorf(f"integer overflow: {quote(text)}")
        node.is_float, node.float_val = True, value
        if value == int(value) and -(1 << 63) <= value < (1 << 63):
            node.is_int, node.int_val = True, int(value)
            node.is_uint = value >= 0
        return node


