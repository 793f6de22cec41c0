"""Docker-style (pflag) flag parsing: --long[=v], -s v, -sv, grouped -it, repeatable
flags, and `interspersed=False` commands (run, exec) that stop at the first argument."""

import sys

from berth.errors import InvalidArgument, UsageError

BOOL, STRING, LIST, INT = "bool", "string", "list", "int"


class Flag:
    __slots__ = ("long", "short", "kind", "default", "help", "dest", "metavar", "hidden")

    def __init__(self, long: str, short: str | None, kind: str, default, help: str = "", metavar: str = "",
                 hidden: bool = False):
        self.long = long
        self.short = short
        self.kind = kind
        self.default = default
        self.help = help
        self.dest = long.replace("-", "_")
        self.metavar = metavar or {STRING: "string", LIST: "list", INT: "int"}.get(kind, "")
        self.hidden = hidden  # parsed, but not in --help (docker's deprecated spellings)

    def spelled(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Command:
    __slots__ = ("name", "usage", "summary", "flags", "interspersed", "min_args", "max_args", "by_long", "by_short")

    def __init__(self, name: str, usage: str, summary: str, flags: list[Flag] = (), interspersed: bool = True,
                 min_args: int = 0, max_args: int | None = None):
        self.name = name
        self.usage = usage
        self.summary = summary
        self.flags = list(flags) + [Flag("help", None, BOOL, False, "Print usage")]
        self.interspersed = interspersed
        self.min_args = min_args
        self.max_args = max_args
        self.by_long = {f.long: f for f in self.flags}
        self.by_short = {f.short: f for f in self.flags if f.short}


class Options:
    """Parsed flag values as attributes (`opts.rm`, `opts.env`), plus which were given."""

    def __init__(self, command: Command):
        for f in command.flags:
            setattr(self, f.dest, list(f.default) if f.kind == LIST else f.default)
        self._given = set()

    def given(self, dest: str) -> bool:
        return dest in self._given


def usage_error(command: Command, message: str) -> InvalidArgument:
    """A flag docker's CLI cannot parse (exit 125); a wrong number of arguments is not one (1)."""
    return UsageError(f"{message}\nSee 'berth {command.name} --help'.")


def parse(command: Command, argv: list[str]) -> tuple[Options, list[str]]:
    opts = Options(command)
    args: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            args.extend(argv[i:])
            break
        if arg.startswith("--") and len(arg) > 2:
            name, eq, value = arg[2:].partition("=")
            flag = command.by_long.get(name)
            if flag is None:
                raise usage_error(command, f"unknown flag: --{name}")
            if flag.kind == BOOL:
                _set(command, opts, flag, value if eq else "true")
            else:
                if not eq:
                    if i >= len(argv):
                        raise usage_error(command, f"flag needs an argument: --{name}")
                    value = argv[i]
                    i += 1
                _set(command, opts, flag, value)
        elif arg.startswith("-") and len(arg) > 1:
            j = 1
            while j < len(arg):
                letter = arg[j]
                flag = command.by_short.get(letter)
                if flag is None:
                    raise usage_error(command, f"unknown shorthand flag: '{letter}' in {arg}")
                rest = arg[j + 1:]
                if flag.kind == BOOL:
                    if rest.startswith("="):
                        _set(command, opts, flag, rest[1:])
                        break
                    _set(command, opts, flag, "true")
                    j += 1
                    continue
                if rest:
                    value = rest[1:] if rest.startswith("=") else rest
                elif i < len(argv):
                    value = argv[i]
                    i += 1
                else:
                    raise usage_error(command, f"flag needs an argument: '{letter}' in -{letter}")
                _set(command, opts, flag, value)
                break
        else:
            args.append(arg)
            if not command.interspersed:
                args.extend(argv[i:])
                break
    if opts.help:
        return opts, args
    wrong = _argument_count_error(command, len(args))
    if wrong:
        raise InvalidArgument(f"'berth {command.name}' {wrong}\n\nUsage:  {command.usage}\n\n"
                              f"Run 'berth {command.name} --help' for more information")
    return opts, args


def _argument_count_error(command: Command, count: int) -> str:
    """docker 28's cobra checks (cli/required.go): what is wrong with `count` arguments, or ""."""
    low, high = command.min_args, command.max_args

    def arguments(n: int) -> str:
        return f"{n} argument" + ("" if n == 1 else "s")

    if high == 0 and count > 0:
        return "accepts no arguments"
    if low <= count and (high is None or count <= high):
        return ""
    if high is None:
        return f"requires at least {arguments(low)}"
    if low == high:
        return f"requires {arguments(low)}"
    if low == 0:
        return f"requires at most {arguments(high)}"
    return f"requires at least {low} and at most {arguments(high)}"


def parse_or_help(command: Command, argv: list[str]) -> tuple[Options, list[str]]:
    """parse(), and with --help print the command's help (the caller then returns 0)."""
    opts, args = parse(command, argv)
    if opts.help:
        sys.stdout.write(help_text(command))
    return opts, args


def _set(command: Command, opts: Options, flag: Flag, value: str) -> None:
    opts._given.add(flag.dest)
    if flag.kind == BOOL:
        if value == "true":  # a bare --flag: nothing to parse
            setattr(opts, flag.dest, True)
            return
        from berth.strconv import parse_bool, quote  # lazy: only --flag=value spellings need them

        try:
            setattr(opts, flag.dest, parse_bool(value))
        except ValueError as err:
            raise usage_error(command, f'invalid argument {quote(value)} for "{flag.spelled()}" flag: {err}') from None
    elif flag.kind == LIST:
        getattr(opts, flag.dest).append(value)
    elif flag.kind == INT:
        try:
            setattr(opts, flag.dest, int(value))
        except ValueError:
            raise usage_error(command, f'invalid argument "{value}" for "{flag.spelled()}" flag: '
                                       f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    else:
        setattr(opts, flag.dest, value)


def help_text(command: Command) -> str:
    lines = [f"\nUsage:  {command.usage}\n", command.summary, ""]
    visible = [f for f in command.flags if not f.hidden]
    if visible:
        lines.append("Options:")
        width = max(len(_label(f)) for f in visible)
        for f in visible:
            lines.append(f"  {_label(f).ljust(width)}   {f.help}")
    return "\n".join(lines) + "\n"


def _label(flag: Flag) -> str:
    short = f"-{flag.short}, " if flag.short else "    "
    return f"{short}--{flag.long}" + (f" {flag.metavar}" if flag.metavar else "")
