"""Dockerfile parsing (buildkit's parser: directives, continuations, heredocs) and the
instructions that only change an image config, for `import -c`, `commit -c` (moby's
dockerfile.BuildFromConfig) and `build` (berth.engine.build runs the rest).

Like moby, the changes are joined into one Dockerfile and handled in three
passes: parse every line, check and parse every instruction, then apply them
in order to one state. So a parse error anywhere wins over an invalid
instruction earlier on, and ENTRYPOINT keeps a CMD set earlier in the same
change list (moby's dispatchEntrypoint clears Cmd only while !cmdSet).
"""

from __future__ import annotations

import posixpath

from berth import fastjson, strconv
from berth.errors import InvalidArgument
from berth.signals import parse_signal
from berth.units import parse_duration_ns

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Callable  # only for type checkers

SUPPORTED = (
    "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
)

DEFAULT_SHELL = ("/bin/sh", "-c")
ESCAPE = "\\"
_SPLIT_WS = "\t\v\f\r "  # buildkit's reWhitespace: [\t\v\f\r ]+


class Heredoc:
    """A here-document of a RUN, COPY or ADD line (buildkit's parser.Heredoc)."""

    __slots__ = ("chomp", "content", "expand", "name")

    def __init__(self, name: str, expand: bool, chomp: bool) -> None:
        self.name = name
        self.expand = expand  # False when the name was quoted: no $VAR expansion of content
        self.chomp = chomp  # <<-: leading tabs are removed
        self.content = ""

    def text(self) -> str:
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(True))


class Node:
    """One parsed Dockerfile instruction, as buildkit's parser leaves it; `line` is where it
    starts (1-based), for docker's "dockerfile parse error on line N" messages."""

    __slots__ = ("args", "flags", "heredocs", "is_json", "line", "name", "original")

    def __init__(self, name: str, flags: list[str], args: list[str], is_json: bool,
                 original: str, line: int = 0) -> None:
        self.name = name
        self.flags = flags
        self.args = args
        self.is_json = is_json
        self.original = original
        self.line = line
        self.heredocs: list[Heredoc] = []


class State:
    """The config being changed, whether a CMD has been set so far (in this stage), and the
    build args visible to variable expansion (ENV wins over an ARG of the same name)."""

    __slots__ = ("args", "cmd_set", "config", "escape")

    def __init__(self, config: dict, args: dict[str, str] | None = None, escape: str = ESCAPE) -> None:
        self.config = config
        self.cmd_set = False
        self.args = args if args is not None else {}
        self.escape = escape

    def env(self) -> dict[str, str]:
        env = dict(self.args)
        for entry in self.config.get("Env") or ():
            key, _, value = entry.partition("=")
            env[key] = value
        return env

    def expand(self, word: str) -> str:
        """Quote removal and $VAR expansion of one word (shell.ProcessWord)."""
        return _Lexer(word, self.env(), self.escape).process_word()

    def expand_words(self, text: str) -> list[str]:
        """Expansion, then splitting into words (shell.ProcessWords)."""
        return _Lexer(text, self.env(), self.escape).process_words()


def apply_changes(config: dict, changes: list[str]) -> dict:
    """Return a copy of image `config` with Dockerfile `changes` applied,
    e.g. ["CMD [\"sh\"]", "ENV A=1", "EXPOSE 80"]. Raises ValueError with
    docker's message for anything docker would refuse."""
    import copy  # lazy: a build copies configs its own way, without this import

    config = copy.deepcopy(config)
    if not changes:
        return config
    nodes = _parse_dockerfile("\n".join(changes))
    commands = []
    for node in nodes:
        parse = _INSTRUCTIONS.get(node.name.lower())
        if parse is None:
            raise ValueError(f"{node.name} is not a valid change command")
        commands.append(parse(node))
    state = State(config)
    for command in commands:
        command(state)
    return state.config


# ---------------------------------------------------------------------------
# Pass 1: lines to nodes (buildkit frontend/dockerfile/parser).


class Dockerfile:
    """A whole Dockerfile: its instructions and the escape token its directive chose."""

    __slots__ = ("escape", "nodes")

    def __init__(self, nodes: list[Node], escape: str) -> None:
        self.nodes = nodes
        self.escape = escape


_HEREDOC_INSTRUCTIONS = ("run", "copy", "add")


def _parse_dockerfile(text: str) -> list[Node]:
    return parse_dockerfile(text).nodes


def parse_dockerfile(text: str) -> Dockerfile:
    """Lines to instructions as buildkit's parser does: parser directives at the top
    (`# escape=`), comments, line continuations, heredocs of RUN/COPY/ADD. Raises
    ValueError (for build: LineError, which knows the line)."""
    nodes = []
    lines = text.split("\n")
    escape = ESCAPE
    seen_escape = False
    directives = True
    i = 0
    while i < len(lines):
        raw = lines[i].rstrip("\r")
        i += 1
        start = i
        if directives:
            directive = _directive(raw)
            if directive is None:
                directives = False
            else:
                name, value = directive
                if name.lower() == "escape":
                    if seen_escape:
                        raise LineError("only one escape parser directive can be used", start)
                    if value not in ("\\", "`"):
                        raise LineError(f"invalid escape token '{value}' does not match ` or \\", start)
                    escape, seen_escape = value, True
                continue
        line = raw.lstrip()
        if line.startswith("#"):
            line = ""
        line, complete = _trim_continuation(line, escape)
        if complete and not line.strip():
            continue
        parts = [line]
        while not complete and i < len(lines):
            cont = lines[i].rstrip("\r")
            i += 1
            if cont.lstrip().startswith("#") or not cont.strip():
                continue  # comments and empty lines inside a continuation
            cont, complete = _trim_continuation(cont, escape)
            parts.append(cont)
        try:
            node = _node_from_line("".join(parts), escape)
        except LineError:
            raise
        except ValueError as err:
            raise LineError(str(err), start) from None
        node.line = start
        if node.name.lower() in _HEREDOC_INSTRUCTIONS and "<<" in node.original:
            node.heredocs = _heredocs_of(node.original)
            for heredoc in node.heredocs:
                i = _read_heredoc(heredoc, lines, i, start)
        nodes.append(node)
    if not nodes:
        raise ValueError("file with no instructions")
    return Dockerfile(nodes, escape)


def _directive(line: str) -> tuple[str, str] | None:
    """A parser directive line (buildkit: ^#\\s*([a-zA-Z][a-zA-Z0-9]*)\\s*=\\s*(.+?)\\s*$),
    as (name, value); without `re`, which a cached build need not import."""
    if not line.startswith("#"):
        return None
    body = line[1:].lstrip()
    end = 0
    while end < len(body) and body[end].isascii() and body[end].isalnum():
        end += 1
    name, rest = body[:end], body[end:].lstrip()
    if not name or not name[0].isalpha() or not rest.startswith("="):
        return None
    value = rest[1:].strip()
    return (name, value) if value else None


class LineError(ValueError):
    """A Dockerfile error at a line: docker's "dockerfile parse error on line N: ..."."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def _heredocs_of(line: str) -> list[Heredoc]:
    """buildkit's heredocsFromLine: each word like <<EOF, <<-EOF, <<"EOF" names one."""
    import re  # lazy: only lines with "<<"

    try:
        words = _Lexer(line, {}).process_words()
    except ValueError:
        return []
    found = []
    for word in words:
        match = re.match(r"^(\d*)<<(-?)([^<]*)$", word)
        if match is None or not match.group(3).strip():
            continue
        name = match.group(3).strip()
        # The lexer removed any quotes: quoted in the line, the content is not expanded.
        quoted = re.search("<<-?[ \t]*[\"'][^\"']*" + re.escape(name), line) is not None
        found.append(Heredoc(name, expand=not quoted, chomp=match.group(2) == "-"))
    return found


def _read_heredoc(heredoc: Heredoc, lines: list[str], i: int, start: int) -> int:
    """Take the lines of `heredoc` from lines[i:], up to its terminator; the next index."""
    content = []
    while i < len(lines):
        raw = lines[i].rstrip("\r")
        i += 1
        if (raw.lstrip("\t") if heredoc.chomp else raw) == heredoc.name:
            heredoc.content = "".join(content)
            return i
        content.append(raw + "\n")
    raise LineError("unterminated heredoc", start)


def _trim_continuation(line: str, escape: str = ESCAPE) -> tuple[str, bool]:
    """Strip a trailing escape (line continues) unless it is itself escaped."""
    stripped = line.rstrip(" \t")
    if stripped.endswith(escape):
        body = stripped[:-1]
        if not body.endswith(escape):
            return body, False
    return line, True


def _node_from_line(line: str, escape: str = ESCAPE) -> Node:
    parts = _split_ws(line.strip(), 1)
    cmd = parts[0] if parts else ""
    rest = parts[1] if len(parts) == 2 else ""
    flags: list[str] = []
    if rest:
        rest, flags = _extract_builder_flags(rest, escape)
    rest = rest.strip()
    parse_args = _LINE_PARSERS.get(cmd.lower(), _parse_ignore)
    args, is_json = parse_args(rest, escape)
    return Node(cmd, flags, args, is_json, line)


def _split_ws(s: str, maxsplit: int = -1) -> list[str]:
    """Split on runs of [\\t\\v\\f\\r ], like Go's regexp Split (no empty
    strings at the ends since the input is already trimmed)."""
    out: list[str] = []
    start = i = 0
    n = len(s)
    while i < n:
        if s[i] in _SPLIT_WS:
            if maxsplit >= 0 and len(out) == maxsplit:
                break
            out.append(s[start:i])
            while i < n and s[i] in _SPLIT_WS:
                i += 1
            start = i
        else:
            i += 1
    out.append(s[start:])
    return out


def _extract_builder_flags(line: str, escape: str = ESCAPE) -> tuple[str, list[str]]:
    """Leading "--flag[=value]" words (quotes and escapes allowed)."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    pos, n = 0, len(line)
    phase = "spaces"
    while True:
        ch = line[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                return "", words
            if ch.isspace():
                pos += 1
                continue
            if not line.startswith("--", pos):
                return line[pos:], words
            phase = "word"
        if pos == n:
            text = "".join(word)
            if text != "--" and (blank_ok or text):
                words.append(text)
            return "", words
        if phase == "word":
            if ch.isspace():
                text = "".join(word)
                if text == "--":
                    return line[pos:], words
                if blank_ok or text:
                    words.append(text)
                word, blank_ok, phase = [], False, "spaces"
            elif ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            elif ch == escape:
                if pos + 1 < n:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
        else:  # in quotes
            if ch == quote:
                phase = "word"
            elif ch == escape:
                if pos + 1 == n:
                    phase = "word"
                else:
                    pos += 1
                    word.append(line[pos])
            else:
                word.append(ch)
        pos += 1


def _parse_words(rest: str, escape: str = ESCAPE) -> list[str]:
    """Split on whitespace outside quotes, keeping quotes and escapes in the
    words: they are removed later, when the word is expanded."""
    words: list[str] = []
    word: list[str] = []
    blank_ok = False
    quote = ""
    phase = "spaces"
    pos, n = 0, len(rest)
    while True:
        ch = rest[pos] if pos < n else ""
        if phase == "spaces":
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            phase = "word"
        if pos == n:
            if blank_ok or word:
                words.append("".join(word))
            break
        if phase == "word":
            if ch.isspace():
                if blank_ok or word:
                    words.append("".join(word))
                word, blank_ok, phase = [], False, "spaces"
                pos += 1
                continue
            if ch in "'\"":
                quote, blank_ok, phase = ch, True, "quote"
            if ch == escape:
                if pos + 1 == n:
                    pos += 1
                    continue  # an escape at the very end is dropped
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
        else:  # in quotes
            if ch == quote:
                phase = "word"
            if ch == escape and quote != "'":
                if pos + 1 == n:
                    phase = "word"
                    pos += 1
                    continue
                word.append(ch)
                pos += 1
                ch = rest[pos]
            word.append(ch)
        pos += 1
    return words


def _parse_name_or_name_val(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    """ARG: `name`, `name=value` (quotes kept for expansion), several on one line."""
    return _parse_words(rest, escape), False


def _parse_ignore(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    return [], False


def _parse_string(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    return ([rest] if rest else []), False


def _parse_whitespace_delimited(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    return (_split_ws(rest) if rest else []), False


def _parse_json(rest: str) -> list[str] | None:
    """The JSON-array form, or None when `rest` is not a JSON array."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = fastjson.loads(rest)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _parse_maybe_json(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    value = _parse_json(rest)
    if value is not None:
        return value, True
    return [rest], False


def _parse_maybe_json_to_list(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    value = _parse_json(rest)
    if value is not None:
        return value, True
    return _parse_whitespace_delimited(rest, escape)


def _name_val_parser(key: str) -> Callable[..., tuple[list[str], bool]]:
    """ENV and LABEL: `k=v k2="v 2"`, or the legacy `k some value`.
    Arguments come out as [key, value, "=" or "", ...]."""

    def parse(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
        words = _parse_words(rest, escape)
        if not words:
            return [], False
        if "=" not in words[0]:
            parts = _split_ws(rest, 1)
            if len(parts) < 2:
                raise ValueError(f"{key} must have two arguments")
            return [parts[0], parts[1], ""], False
        args = []
        for word in words:
            if "=" not in word:
                raise ValueError(f"Syntax error - can't find = in {strconv.quote(word)}. "
                                 "Must be of the form: name=value")
            name, _, value = word.partition("=")
            args += [name, value, "="]
        return args, False

    return parse


def _parse_health_config(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    if sep == 0:
        return [], False
    args, is_json = _parse_maybe_json(rest[sep:].lstrip(), escape)
    return [rest[:sep]] + args, is_json


def _parse_sub_command(rest: str, escape: str = ESCAPE) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    child = _node_from_line(rest, escape)
    return [child.name] + child.args, False


_LINE_PARSERS: dict[str, Callable[..., tuple[list[str], bool]]] = {
    "add": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "copy": _parse_maybe_json_to_list,
    "entrypoint": _parse_maybe_json,
    "env": _name_val_parser("ENV"),
    "expose": _parse_whitespace_delimited,
    "from": _parse_whitespace_delimited,
    "healthcheck": _parse_health_config,
    "label": _name_val_parser("LABEL"),
    "maintainer": _parse_string,
    "onbuild": _parse_sub_command,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "volume": _parse_maybe_json_to_list,
    "workdir": _parse_string,
}


# ---------------------------------------------------------------------------
# Pass 2 and 3: each instruction checks its arguments and returns the
# function that applies it (buildkit instructions + moby dispatchers).


def _parse_flags(node: Node, allowed: tuple[str, ...] = ()) -> dict[str, str]:
    values: dict[str, str] = {}
    for flag in node.flags:
        flag_name, has_value, value = flag.partition("=")
        name = flag_name[2:]
        if name not in allowed:
            raise ValueError(f"unknown flag: {flag_name}")
        if name in values:
            raise ValueError(f"duplicate flag specified: {flag_name}")
        if not has_value:
            raise ValueError(f"missing a value on flag: {flag_name}")
        values[name] = value
    return values


def _exactly_one(node: Node, instruction: str) -> str:
    if len(node.args) != 1:
        raise ValueError(f"{instruction} requires exactly one argument")
    return node.args[0]


def _at_least_one(node: Node, instruction: str) -> None:
    if not node.args:
        raise ValueError(f"{instruction} requires at least one argument")


def _key_value_pairs(node: Node, instruction: str) -> list[tuple[str, str]]:
    _parse_flags(node)
    _at_least_one(node, instruction)
    pairs = []
    for i in range(0, len(node.args), 3):
        if not node.args[i]:
            raise ValueError(f"{instruction} names can not be blank")
        pairs.append((node.args[i], node.args[i + 1]))
    return pairs


def _cmd_line(args: list[str], is_json: bool) -> list[str]:
    """Exec form as given; shell form joined into one string."""
    if not args or is_json:
        return list(args)
    return [" ".join(args)]


def _with_shell(state: State, cmd_line: list[str]) -> list[str]:
    return list(state.config.get("Shell") or DEFAULT_SHELL) + cmd_line


def _parse_env(node: Node) -> Callable[[State], None]:
    pairs = _key_value_pairs(node, "ENV")

    def dispatch(state: State) -> None:
        expanded = [(state.expand(k), state.expand(v)) for k, v in pairs]
        env = list(state.config.get("Env") or [])
        for key, value in expanded:
            entry = f"{key}={value}"
            for i, existing in enumerate(env):
                if existing.partition("=")[0] == key:
                    env[i] = entry
                    break
            else:
                env.append(entry)
        state.config["Env"] = env

    return dispatch


def _parse_label(node: Node) -> Callable[[State], None]:
    pairs = _key_value_pairs(node, "LABEL")

    def dispatch(state: State) -> None:
        expanded = [(state.expand(k), state.expand(v)) for k, v in pairs]
        labels = dict(state.config.get("Labels") or {})
        labels.update(expanded)
        state.config["Labels"] = labels

    return dispatch


def _parse_cmd(node: Node) -> Callable[[State], None]:
    _parse_flags(node)
    cmd_line = _cmd_line(node.args, node.is_json)

    def dispatch(state: State) -> None:
        state.config["Cmd"] = cmd_line if node.is_json else _with_shell(state, cmd_line)
        state.config.pop("ArgsEscaped", None)
        if cmd_line:
            state.cmd_set = True

    return dispatch


def _parse_entrypoint(node: Node) -> Callable[[State], None]:
    _parse_flags(node)
    cmd_line = _cmd_line(node.args, node.is_json) or None  # an empty ENTRYPOINT removes it

    def dispatch(state: State) -> None:
        if cmd_line is not None and not node.is_json:
            state.config["Entrypoint"] = _with_shell(state, cmd_line)
        else:
            state.config["Entrypoint"] = cmd_line
        state.config.pop("ArgsEscaped", None)
        if not state.cmd_set:
            state.config["Cmd"] = None

    return dispatch


def _parse_expose(node: Node) -> Callable[[State], None]:
    _at_least_one(node, "EXPOSE")
    _parse_flags(node)
    ports = sorted(node.args)

    def dispatch(state: State) -> None:
        env = state.env()
        words = [w for p in ports for w in _Lexer(p, env).process_words()]
        exposed = dict(state.config.get("ExposedPorts") or {})
        for word in words:
            for port in _exposed_ports(word):
                exposed.setdefault(port, {})
        state.config["ExposedPorts"] = exposed

    return dispatch


def _parse_user(node: Node) -> Callable[[State], None]:
    user = _exactly_one(node, "USER")
    _parse_flags(node)

    def dispatch(state: State) -> None:
        state.config["User"] = state.expand(user)

    return dispatch


def _parse_workdir(node: Node) -> Callable[[State], None]:
    path = _exactly_one(node, "WORKDIR")
    _parse_flags(node)

    def dispatch(state: State) -> None:
        state.config["WorkingDir"] = _normalize_workdir(
            state.config.get("WorkingDir") or "", state.expand(path))

    return dispatch


def _parse_volume(node: Node) -> Callable[[State], None]:
    _at_least_one(node, "VOLUME")
    _parse_flags(node)
    volumes = [v.strip() for v in node.args]
    if "" in volumes:
        raise ValueError("VOLUME specified can not be an empty string")

    def dispatch(state: State) -> None:
        expanded = [state.expand(v) for v in volumes]
        if "" in expanded:
            raise ValueError("VOLUME specified can not be an empty string")
        merged = dict(state.config.get("Volumes") or {})
        for volume in expanded:
            merged.setdefault(volume, {})
        state.config["Volumes"] = merged

    return dispatch


def _parse_stopsignal(node: Node) -> Callable[[State], None]:
    # Like buildkit, STOPSIGNAL never looks at flags.
    signal = _exactly_one(node, "STOPSIGNAL")

    def dispatch(state: State) -> None:
        expanded = state.expand(signal)
        _check_signal(expanded)
        state.config["StopSignal"] = expanded

    return dispatch


def _parse_onbuild(node: Node) -> Callable[[State], None]:
    _at_least_one(node, "ONBUILD")
    _parse_flags(node)
    trigger = node.args[0].strip().upper()
    if trigger == "ONBUILD":
        raise ValueError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ValueError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = node.original.lstrip()
    if expression[:7].upper() == "ONBUILD":
        expression = expression[7:].lstrip()

    def dispatch(state: State) -> None:
        state.config["OnBuild"] = list(state.config.get("OnBuild") or []) + [expression]

    return dispatch


_HEALTHCHECK_FLAGS = ("interval", "timeout", "start-period", "start-interval", "retries")
_HEALTHCHECK_DURATIONS = (
    ("interval", "Interval"), ("timeout", "Timeout"),
    ("start-period", "StartPeriod"), ("start-interval", "StartInterval"),
)


def _parse_healthcheck(node: Node) -> Callable[[State], None]:
    _at_least_one(node, "HEALTHCHECK")
    kind = node.args[0].upper()
    args = node.args[1:]
    if kind == "NONE":
        if args:
            raise ValueError("HEALTHCHECK NONE takes no arguments")
        health: dict = {"Test": ["NONE"]}
    else:
        flags = _parse_flags(node, _HEALTHCHECK_FLAGS)
        if kind != "CMD":
            raise ValueError(f"Unknown type {strconv.quote(kind)} in HEALTHCHECK (try CMD)")
        test = _cmd_line(args, node.is_json)
        if not test:
            raise ValueError("Missing command after HEALTHCHECK CMD")
        health = {"Test": ["CMD" if node.is_json else "CMD-SHELL"] + test}
        for flag, key in _HEALTHCHECK_DURATIONS:
            value = _interval(flag, flags.get(flag, ""))
            if value:
                health[key] = value
        raw_retries = flags.get("retries", "")
        retries = _go_parse_int(raw_retries) if raw_retries else 0
        if retries < 0:
            raise ValueError(f"--retries cannot be negative ({retries})")
        if retries:
            health["Retries"] = retries

    def dispatch(state: State) -> None:
        state.config["Healthcheck"] = health

    return dispatch


_INSTRUCTIONS: dict[str, Callable[[Node], Callable[[State], None]]] = {
    "cmd": _parse_cmd,
    "entrypoint": _parse_entrypoint,
    "env": _parse_env,
    "expose": _parse_expose,
    "healthcheck": _parse_healthcheck,
    "label": _parse_label,
    "onbuild": _parse_onbuild,
    "stopsignal": _parse_stopsignal,
    "user": _parse_user,
    "volume": _parse_volume,
    "workdir": _parse_workdir,
}


def _parse_shell(node: Node) -> Callable[[State], None]:
    _parse_flags(node)
    if not node.is_json:
        raise ValueError("SHELL requires the arguments to be in JSON form")
    _at_least_one(node, "SHELL")
    shell = list(node.args)

    def dispatch(state: State) -> None:
        state.config["Shell"] = shell

    return dispatch


# What a build applies to the config alone (commit -c and import -c allow fewer: no SHELL).
CONFIG_INSTRUCTIONS: dict[str, Callable[[Node], Callable[[State], None]]] = dict(_INSTRUCTIONS, shell=_parse_shell)


def parse_flags(node: Node, allowed: tuple[str, ...] = ()) -> dict[str, str]:
    """The instruction's --flag=value flags; ValueError for unknown, repeated or empty ones."""
    return _parse_flags(node, allowed)


def cmd_line(args: list[str], is_json: bool) -> list[str]:
    """RUN/CMD arguments: the exec form as given, the shell form joined into one string."""
    return _cmd_line(args, is_json)


def with_shell(state: State, line: list[str]) -> list[str]:
    """A shell-form command line behind the stage's SHELL (default /bin/sh -c)."""
    return _with_shell(state, line)


def normalize_workdir(current: str, requested: str) -> str:
    return _normalize_workdir(current, requested)


def _interval(flag: str, value: str) -> int:
    if not value:
        return 0
    ns = parse_duration_ns(value)
    if ns == 0:
        return 0
    if ns < 1_000_000:
        raise ValueError(f"Interval {strconv.quote(flag)} cannot be less than 1ms")
    return ns


def _go_parse_int(value: str) -> int:
    digits = value[1:] if value[:1] in ("+", "-") else value
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f"strconv.ParseInt: parsing {strconv.quote(value)}: invalid syntax")
    number = int(value)
    if not -(1 << 31) <= number < 1 << 31:
        raise ValueError(f"strconv.ParseInt: parsing {strconv.quote(value)}: value out of range")
    return number


def _normalize_workdir(current: str, requested: str) -> str:
    if not requested:
        raise ValueError("cannot normalize nothing")
    if not requested.startswith("/"):
        requested = posixpath.join("/", current, requested)
    cleaned = posixpath.normpath(requested)
    # Go's filepath.Clean, unlike normpath, folds a leading "//" too.
    return "/" + cleaned.lstrip("/")


def _check_signal(sig: str) -> None:
    """moby/sys/signal.ParseSignal: a signal number or a known name."""
    try:
        parse_signal(sig)
    except InvalidArgument:
        raise ValueError(f"invalid signal: {sig}") from None


def _exposed_ports(raw: str) -> list[str]:
    """The "port/proto" keys one EXPOSE word stands for (moby parsePortSpec);
    a range such as 8000-8002 gives one key a port."""
    parts = raw.split(":")
    ip, host_port, container_port = "", "", parts[-1]
    if len(parts) == 2:
        host_port = parts[0]
    elif len(parts) > 2:
        ip, host_port = ":".join(parts[:-2]), parts[-2]
    port, _, proto = container_port.partition("/")
    if not port:
        raise ValueError(f"no port specified: {raw}<empty>")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp"):
        raise ValueError(f"invalid proto: {proto}")
    if ip:
        _check_ip(ip)
    start, end = _port_range(port, "invalid containerPort: " + port)
    if host_port:
        host_start, host_end = _port_range(host_port, "invalid hostPort: " + host_port)
        if end - start != host_end - host_start and end != start:
            raise ValueError("invalid ranges specified for container and host Ports: "
                             f"{port} and {host_port}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _port_range(spec: str, error: str) -> tuple[int, int]:
    spec = spec.partition("/")[0]
    start, dash, end = spec.partition("-")
    first = _port_number(start, error)
    if not dash or start == end:
        return first, first
    last = _port_number(end, error)
    if last < first:
        raise ValueError(error)
    return first, last


def _port_number(text: str, error: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ValueError(error)
    return int(text)


def _check_ip(ip: str) -> None:
    import ipaddress  # lazy: only instructions naming an IP

    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"invalid IP address: {ip}") from None


# ---------------------------------------------------------------------------
# Word expansion (buildkit frontend/dockerfile/shell, escape token "\").


class _LexError(ValueError):
    pass


class _Words:
    """Splits the expanded text into words, for ProcessWords."""

    __slots__ = ("buf", "in_word", "words")

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.buf:
                self.words.append("".join(self.buf))
                self.buf = []
                self.in_word = False
        else:
            self.add_raw(ch)

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw(self, text: str) -> None:
        self.buf.append(text)
        self.in_word = True

    def result(self) -> list[str]:
        if self.buf:
            self.words.append("".join(self.buf))
            self.buf = []
        return self.words


class _Lexer:
    """Quote removal and variable expansion like a POSIX shell word:
    '...', "...", \\x, $VAR, ${VAR}, ${VAR:-word}, ${VAR:+word},
    ${VAR:?message}, ${VAR#pattern}, ${VAR%pattern}, ${VAR/from/to}."""

    __slots__ = ("env", "escape", "pos", "raw_escapes", "src")

    def __init__(self, src: str, env: dict[str, str], escape: str = ESCAPE) -> None:
        self.src = src
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_escapes = False

    def process_word(self) -> str:
        return self._process()[0]

    def process_words(self) -> list[str]:
        return self._process()[1]

    def _process(self) -> tuple[str, list[str]]:
        try:
            return self._process_stop_on("", False)
        except _LexError as exc:
            raise ValueError(f"failed to process {strconv.quote(self.src)}: {exc}") from None

    def _peek(self) -> str:
        return self.src[self.pos] if self.pos < len(self.src) else ""

    def _next(self) -> str:
        ch = self._peek()
        self.pos += len(ch)
        return ch

    def _process_stop_on(self, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._scan(stop)
        finally:
            self.raw_escapes = saved

    def _scan(self, stop: str) -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while (ch := self._peek()) != "":
            if stop and ch == stop:
                self.pos += 1
                return "".join(result), words.result()
            if ch == "$":
                text = self._dollar()
                result.append(text)
                words.add_string(text)
            elif ch in "'\"<":
                text = {"'": self._single_quote, '"': self._double_quote,
                        "<": self._possible_heredoc}[ch]()
                result.append(text)
                words.add_raw(text)
            else:
                self.pos += 1
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw(ch)
                        result.append(ch)
                    ch = self._next()
                    if not ch:
                        break
                    words.add_raw(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise _LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def _single_quote(self) -> str:
        self.pos += 1
        end = self.src.find("'", self.pos)
        if end < 0:
            raise _LexError("unexpected end of statement while looking for matching single-quote")
        text = self.src[self.pos:end]
        self.pos = end + 1
        return text

    def _double_quote(self) -> str:
        self.pos += 1
        out: list[str] = []
        while True:
            ch = self._peek()
            if not ch:
                raise _LexError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.pos += 1
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            self.pos += 1
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                following = self._peek()
                if not following:
                    continue
                if following in ('"', "$", self.escape):
                    ch = self._next()
            out.append(ch)

    def _possible_heredoc(self) -> str:
        # "<<" and the blanks after it stay one word, as in buildkit.
        self.pos += 1
        if self._peek() != "<":
            return "<"
        self.pos += 1
        start = self.pos
        while self._peek() in ("\t", "\r", " ") and self._peek():
            self.pos += 1
        return "<<" + self.src[start:self.pos]

    def _name(self) -> str:
        start = self.pos
        ch = self._peek()
        if ch.isdecimal():
            while self._peek().isdecimal() and self._peek():
                self.pos += 1
            return self.src[start:self.pos]
        if ch and ch in "@*#?-$!":
            self.pos += 1
            return ch
        while (ch := self._peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
            self.pos += 1
        return self.src[start:self.pos]

    def _dollar(self) -> str:
        self.pos += 1
        if self._peek() != "{":
            name = self._name()
            return self.env.get(name, "") if name else "$"
        self.pos += 1
        ch = self._peek()
        if not ch:
            raise _LexError("syntax error: missing '}'")
        if ch in "{}:":
            raise _LexError("syntax error: bad substitution")
        name = self._name()
        ch = self._next()
        if not ch:
            raise _LexError("syntax error: missing '}'")
        if ch == "}":
            return self.env.get(name, "")
        if ch == "/":
            return self._replace(name)
        modifier = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = self._next()
            modifier += ch
        elif ch not in "+-?#%":
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        if null_is_unset and ch in ("#", "%"):
            raise _LexError(f"unsupported modifier ({modifier}) in substitution")
        word = self._until("}", ch in ("#", "%"), "syntax error: missing '}'")
        value = self.env.get(name)
        is_set = value is not None
        empty = not is_set or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not is_set:
                raise _LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word[:1] == ch
            if greedy:
                word = word[1:]
            if ch == "#":
                return _trim_prefix(word, value or "", greedy)
            return _trim_prefix(_reverse_pattern(word), (value or "")[::-1], greedy)[::-1]
        raise _LexError(f"unsupported modifier ({modifier}) in substitution")

    def _until(self, stop: str, raw_escapes: bool, eof_error: str) -> str:
        try:
            return self._process_stop_on(stop, raw_escapes)[0]
        except _LexError:
            if not self._peek():
                raise _LexError(eof_error) from None
            raise

    def _replace(self, name: str) -> str:
        replace_all = self._peek() == "/"
        if replace_all:
            self.pos += 1
        pattern = self._until("/", True, "syntax error: missing '/' in ${}")
        replacement = self._until("}", True, "syntax error: missing '}'")
        value = self.env.get(name, "")
        regex = _shell_pattern_regex(pattern, greedy=True, anchored=False)
        return regex.sub(lambda _m: replacement, value, count=0 if replace_all else 1)


def _shell_pattern_regex(pattern: str, greedy: bool, anchored: bool):
    """A shell glob (*, ?, \\x) as a Python regular expression."""
    import re  # lazy: only ${VAR#...}, ${VAR%...} and ${VAR/...}

    out = ["^"] if anchored else []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < n and pattern[i] in "}/":
                continue
            escaped = pattern[i] if i < n else ""
            if escaped not in ("*", "?", "\\"):
                raise _LexError(f"invalid pattern ({pattern}) in substitution: "
                                f"invalid escape '\\{escaped}'")
            out.append(re.escape(escaped))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL)


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern_regex(pattern, greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """Reverse a glob, keeping each escape in front of what it escapes."""
    tokens = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            tokens.append(pattern[i:i + 2])
            i += 2
        else:
            tokens.append(pattern[i])
            i += 1
    return "".join(reversed(tokens))
