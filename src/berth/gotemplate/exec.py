"""Executing a parsed template (text/template's exec.go and funcs.go) with docker/cli's template
functions, and docker's formatter (`table ...` formats); the package's public entry points.
JSON for the `json` function is encoding/json's, as docker configures it."""

from berth.gotemplate.parser import (
    ActionNode,
    BoolNode,
    BranchNode,
    ChainNode,
    CommandNode,
    DotNode,
    FieldNode,
    IdentifierNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    parse_trees,
)
from berth.gotemplate.values import (
    MISSING,
    GoStruct,
    GoTime,
    NilMap,
    NilSlice,
    Stringer,
    TemplateError,
    quote,
    sorted_keys,
    type_name,
)

_NOFINAL = object()  # no value piped in from the previous command (Go's missingVal)
_MAX_EXEC_DEPTH = 100  # nested {{template}} calls; Python's stack is smaller than Go's
_INF = float("inf")


def _fmt():
    """berth.gotemplate.fmt, imported on first use."""
    import berth.gotemplate.fmt as fmt  # lazy: strings, most of what docker's templates print, need no fmt

    return fmt


# ---------------------------------------------------------------------------
# JSON like docker's `json` function: encoding/json with SetEscapeHTML(false).


class _Unsupported(Exception):
    pass


_JSON_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_JSON_ESCAPES.update({
    0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
    ord('"'): '\\"', ord("\\"): "\\\\", 0x2028: "\\u2028", 0x2029: "\\u2029",
})


_JSON_HTML_ESCAPES = {**_JSON_ESCAPES, ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


def _json_quote(s: str, html: bool = False) -> str:
    return '"' + s.translate(_JSON_HTML_ESCAPES if html else _JSON_ESCAPES) + '"'


def marshal_json(fields: dict) -> str:
    """json.Marshal of a map[string]interface{} of strings (and nil): sorted keys, HTML
    escaped. What docker's formatter contexts' MarshalJSON returns; an object with a
    MarshalJSON method is encoded as the text that method returns."""
    items = (_json_quote(k, True) + ":" + ("null" if v is None else _json_quote(v, True))
             for k, v in sorted(fields.items()))
    return "{" + ",".join(items) + "}"


def _json_float(value: float) -> str:
    if value != value or value in (_INF, -_INF):
        raise _Unsupported
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = _fmt().format_float(value, "e", -1)
        if text[-4:-1] == "e-0":  # Go writes e-7, not e-07
            text = text[:-2] + text[-1]
        return text
    return _fmt().format_float(value, "f", -1)


def _json_encode(value, out: list) -> None:
    if value is None or value is MISSING or type(value) in (NilSlice, NilMap):
        out.append("null")
    elif value is True or value is False:
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(f"{value:d}")
    elif isinstance(value, float):
        out.append(_json_float(value))
    elif isinstance(value, str):
        out.append(_json_quote(value))
    elif isinstance(value, GoStruct) and value.json_fields is not None:
        _json_encode_struct(value, out)
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
    elif isinstance(value, GoTime):
        out.append(_json_quote(value.text))
    elif isinstance(value, Stringer):
        _json_encode(value.value, out)
    elif hasattr(value, "MarshalJSON"):
        out.append(value.MarshalJSON())
    else:
        out.append(_json_quote(str(value)))


def _json_encode_struct(value: GoStruct, out: list) -> None:
    """A struct by its json tags: renamed keys, omitempty fields left out when empty."""
    out.append("{")
    first = True
    for field, key, omitempty in value.json_fields:
        item = value[field]
        empty = item.value if isinstance(item, Stringer) else item
        if omitempty and (empty is None or empty is False or empty == 0 or empty == "" or
                          (isinstance(empty, (list, tuple, dict)) and not empty)):
            continue
        if not first:
            out.append(",")
        first = False
        out.append(_json_quote(key) + ":")
        _json_encode(item, out)
    out.append("}")


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
    if value is None or value is MISSING:
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
    if value is None or value is MISSING:
        raise _CallError("len of nil pointer")
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))  # Go counts bytes
    if isinstance(value, (list, tuple, dict)) and not isinstance(value, GoStruct):
        return len(value)
    raise _CallError(f"len of type {type_name(value)}")


def _index_arg(index, cap: int) -> int:
    if index is None or index is MISSING:
        raise _CallError("cannot index slice/array with nil")
    if isinstance(index, bool) or not isinstance(index, int):
        raise _CallError(f"cannot index slice/array with type {type_name(index)}")
    if index < 0 or index > cap:
        raise _CallError(f"index out of range: {index}")
    return index


def _fn_index(item, *indexes):
    if item is None or item is MISSING:
        raise _CallError("index of untyped nil")
    for index in indexes:
        if item is None or item is MISSING:
            raise _CallError("index of nil pointer")
        if isinstance(item, (str, list, tuple)):
            if isinstance(item, str):
                item = item.encode("utf-8", "surrogatepass")  # Go indexes a string's bytes
            x = _index_arg(index, len(item))
            if x == len(item):
                raise _CallError(f"index out of range: {x}")
            item = item[x]
        elif isinstance(item, dict) and not isinstance(item, GoStruct):
            if index is None or index is MISSING:
                raise _CallError("value is nil; should be of type string")
            if isinstance(index, (list, dict)):
                raise _CallError(f"value has type {type_name(index)}; should be string")
            if index in item:
                item = item[index]
            elif all(isinstance(v, str) for v in item.values()):
                # a map of strings (docker's Labels, Options) gives the zero string
                item = ""
            else:
                item = MISSING
        else:
            raise _CallError(f"can't index item of type {type_name(item)}")
    return item


def _fn_slice(item, *indexes):
    if item is None or item is MISSING:
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
        raise _CallError(f"can't slice item of type {type_name(item)}")
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
    return value is None or value is MISSING


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
        elif type_name(arg1) != type_name(arg):
            fmt = _fmt()
            raise _CallError(f"non-comparable types {fmt.sprint_value(arg1)}: {type_name(arg1)}, "
                             f"{type_name(arg)}: {fmt.sprint_value(arg)}")
        elif isinstance(arg, (list, tuple)) or (isinstance(arg, dict) and not isinstance(arg, GoStruct)):
            raise _CallError(f"non-comparable type {_fmt().sprint_value(arg)}: {type_name(arg)}")
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
    return _fmt().sprint(args)


def _fn_println(*args) -> str:
    return " ".join(_fmt().sprint_value(a) for a in args) + "\n"


def _fn_printf(fmt: str, *args) -> str:
    return _fmt().sprintf(fmt, args)


def _escaper_input(args) -> str:
    """What html, js and urlquery escape: the one string, or fmt.Sprint of the arguments."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _fmt().sprint(["<no value>" if a is None else a for a in args])


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
    return sep.join(e if isinstance(e, str) else _fmt().sprint_value(e) for e in items or ())


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

    def __init__(self, tmpl: "Template", funcs: dict, missingkey_error: bool, out: list) -> None:
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
            f"template: {self.tmpl.name}:{line}:{col}: executing {quote(self.name)} at <{node}>: {msg}"
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

    def walk(self, dot, node: Node) -> None:
        self.node = node
        kind = type(node)
        if kind is TextNode:
            self.out.append(node.text)
        elif kind is ListNode:
            for child in node.nodes:
                self.walk(dot, child)
        elif kind is ActionNode:
            value = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:  # declarations print nothing
                self.node = node
                if type(value) is str:
                    self.out.append(value)
                else:
                    self.out.append("<no value>" if value is MISSING else _fmt().sprint_value(value))
        elif kind is BranchNode:
            if node.keyword == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif kind is TemplateNode:
            self.walk_template(dot, node)
        elif node.word == "break":
            raise _BreakLoop
        else:
            raise _ContinueLoop

    def walk_if_or_with(self, dot, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            value = self.eval_pipeline(dot, node.pipe)
            if _truth(value):
                self.walk(value if node.keyword == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot, node: BranchNode) -> None:
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

    def range_over(self, value, node: BranchNode) -> bool:
        """Run the body for each element; False when there was none."""
        if value is None or value is MISSING:
            return False  # like a nil map
        if isinstance(value, int) and not isinstance(value, bool):
            if len(node.pipe.decl) > 1:
                self.errorf(f"can't use {value} to iterate over more than one variable")
            pairs = ((MISSING, i) for i in range(value))
        elif isinstance(value, (list, tuple)):
            pairs = enumerate(value)
        elif isinstance(value, dict) and not isinstance(value, GoStruct):
            pairs = ((k, value[k]) for k in sorted_keys(value))
        else:
            self.errorf(f"range can't iterate over {_fmt().sprint_value(value)}")
        ran = False
        for index, elem in pairs:
            ran = True
            self.one_iteration(node, index, elem)
        return ran

    def one_iteration(self, node: BranchNode, index, elem) -> None:
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

    def walk_template(self, dot, node: TemplateNode) -> None:
        self.node = node
        tree = self.tmpl.trees.get(node.name)
        if tree is None:
            self.errorf(f"template {quote(node.name)} not defined")
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

    def eval_pipeline(self, dot, pipe: PipeNode | None):
        if pipe is None:
            return MISSING
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

    def eval_command(self, dot, cmd: CommandNode, final):
        first = cmd.args[0]
        kind = type(first)
        if kind is FieldNode:
            return self.eval_field_node(dot, first, cmd.args, final)
        if kind is ChainNode:
            return self.eval_chain_node(dot, first, cmd.args, final)
        if kind is IdentifierNode:
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if kind is PipeNode:
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        if kind is VariableNode:
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.node = first
        self.not_a_function(cmd.args, final)
        if kind is BoolNode:
            return first.value
        if kind is DotNode:
            return dot
        if kind is NilNode:
            self.errorf("nil is not a command")
        if kind is NumberNode:
            return self.ideal_constant(first)
        return first.text

    def ideal_constant(self, number: NumberNode):
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
        return MISSING

    def eval_field_node(self, dot, field: FieldNode, args, final):
        self.node = field
        return self.eval_field_chain(dot, dot, field, field.ident, args, final)

    def eval_chain_node(self, dot, chain: ChainNode, args, final):
        self.node = chain
        if type(chain.node) is NilNode:
            self.errorf(f"indirection through explicit nil in {chain}")
        receiver = self.eval_arg(dot, "val", chain.node)
        return self.eval_field_chain(dot, receiver, chain, chain.field, args, final)

    def eval_variable_node(self, dot, var: VariableNode, args, final):
        self.node = var
        value = self.var_value(var.ident[0])
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, var, var.ident[1:], args, final)

    def eval_field_chain(self, dot, receiver, node: Node, ident: list, args, final):
        from_map = False  # values read from a map are interface{} to Go
        for name in ident[:-1]:
            value = self.eval_field(dot, name, node, None, _NOFINAL, receiver, from_map)
            from_map = isinstance(receiver, dict) and not isinstance(receiver, GoStruct)
            receiver = value
        return self.eval_field(dot, ident[-1], node, args, final, receiver, from_map)

    def eval_field(self, dot, name: str, node: Node, args, final, receiver, from_map: bool):
        if receiver is MISSING:
            if self.missingkey_error:
                self.errorf(f"nil data; no entry for key {quote(name)}")
            return MISSING
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
            method = getattr(type(receiver), name, None) if type(receiver) is not dict and name[:1].isupper() else None
            if callable(method):  # a method of a named map type: Go looks methods up before keys
                return self.call_method(dot, getattr(receiver, name), node, name, args, final)
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if self.missingkey_error:
                self.errorf(f"map has no entry for key {quote(name)}")
            return MISSING
        if not isinstance(receiver, _PLAIN_TYPES) and not name.startswith("_"):
            try:
                attr = getattr(receiver, name)
            except AttributeError:
                attr = MISSING
            if attr is not MISSING:
                if callable(attr):
                    return self.call_method(dot, attr, node, name, args, final)
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return attr
        shown = "interface {}" if from_map else type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {shown}")

    def call_method(self, dot, method, node: Node, name: str, args, final):
        argv = [self.eval_arg(dot, "any", arg) for arg in (args[1:] if args else ())]
        if final is not _NOFINAL:
            argv.append(None if final is MISSING else final)
        try:
            return method(*argv)
        except TemplateError:
            raise
        except Exception as err:  # like Go's safeCall: the method's failure fails the template
            self.node = node
            self.errorf(f"error calling {name}: {err}")

    def eval_function(self, dot, ident: IdentifierNode, cmd: Node, args, final):
        self.node = ident
        return self.eval_call(dot, self.funcs[ident.name], cmd, ident.name, args, final)

    def eval_call(self, dot, func: _Func, node: Node, name: str, args, final):
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
            value = MISSING
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

    def eval_arg(self, dot, kind: str, node: Node):
        self.node = node
        t = type(node)
        if t is DotNode:
            return self.validate(dot, kind)
        if t is NilNode:
            if kind == "val":
                return MISSING
            if kind in ("any", "strs"):
                return None
            self.errorf(f"cannot assign nil to {_KIND_GO_TYPE[kind]}")
        if t is FieldNode:
            return self.validate(self.eval_field_node(dot, node, [node], _NOFINAL), kind)
        if t is VariableNode:
            return self.validate(self.eval_variable_node(dot, node, None, _NOFINAL), kind)
        if t is PipeNode:
            return self.validate(self.eval_pipeline(dot, node), kind)
        if t is IdentifierNode:
            return self.validate(self.eval_function(dot, node, node, None, _NOFINAL), kind)
        if t is ChainNode:
            return self.validate(self.eval_chain_node(dot, node, None, _NOFINAL), kind)
        if kind in ("val", "any"):
            if t is BoolNode:
                return node.value
            if t is NumberNode:
                return self.ideal_constant(node)
            return node.text
        if kind == "str":
            if t is StringNode:
                return node.text
            self.errorf(f"expected string; found {node}")
        if kind == "int":
            if t is NumberNode and node.is_int:
                return node.int_val
            self.errorf(f"expected integer; found {node}")
        self.errorf(f"can't handle {node} for arg of type {_KIND_GO_TYPE[kind]}")

    def validate(self, value, kind: str):
        """Go's validateType: can this value be passed as a parameter of that kind?"""
        if kind == "val":
            return value
        if kind == "any":
            return None if value is MISSING else value
        if value is MISSING:
            if kind == "strs":
                return None
            self.errorf(f"invalid value; expected {_KIND_GO_TYPE[kind]}")
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "strs" and (value is None or isinstance(value, (list, tuple))):
            return value
        self.errorf(f"wrong type for value; expected {_KIND_GO_TYPE[kind]}; got {type_name(value)}")


# ---------------------------------------------------------------------------
# Templates: parse once, execute many times.


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
            data = MISSING  # Go's reflect.ValueOf(nil)
        state = _Exec(self, funcs, missingkey_error, out)
        state.vars.append(["$", data])
        try:
            state.walk(data, self.trees[self.name])
        except RecursionError:
            raise TemplateError(f"template: {self.name}: exceeded maximum template depth") from None


def parse(text: str, name: str = "") -> Template:
    """Parse a template; syntax errors raise TemplateError with Go's message."""
    return Template(name, text, parse_trees(name, text, _BUILTINS))


def render(text: str, data, missingkey_error: bool = False) -> str:
    return parse(text).execute(data, missingkey_error)


class _SubHeader(dict):
    """docker's SubHeaderContext: the column titles, and `{{.Label "com.example.key"}}`'s
    title (the key's last dotted part, - and _ as spaces)."""

    def Label(self, name: str) -> str:  # noqa: N802 - the template's name for it
        return name.rsplit(".", 1)[-1].replace("-", " ").replace("_", " ")


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
            tmpl._run(_SubHeader(header), False, _HEADER_FUNCS, out)
        except TemplateError:
            pass  # docker ignores a header that fails and keeps what it printed
        out.append("\n")
    for row in rows:
        tmpl._run(row, False, _BUILTINS, out)
        out.append("\n")
    result = "".join(out)
    if not table:
        return result
    from berth.gotemplate.tabwriter import tabwrite  # lazy: only `table` formats align columns

    return tabwrite(result)


