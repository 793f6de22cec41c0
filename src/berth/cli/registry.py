"""Registry commands: pull, push, login, logout, and docker's rendering of the progress
messages pull and push stream (its jsonmessage: redrawn per-layer lines on a terminal, plain
lines without the bars otherwise)."""

import os
import sys

from berth.cli.flags import BOOL, STRING, Command, Flag, parse_or_help
from berth.cli.progress import render
from berth.engine import pull as transfers
from berth.errors import BerthError, InvalidArgument

PULL = Command("pull", "berth pull [OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry",
               [Flag("all-tags", "a", BOOL, False, "Download all tagged images in the repository"),
                Flag("disable-content-trust", None, BOOL, True, "Skip image verification"),
                Flag("platform", None, STRING, None, "Set platform if server is multi-platform capable"),
                Flag("quiet", "q", BOOL, False, "Suppress verbose output")],
               min_args=1, max_args=1)
PUSH = Command("push", "berth push [OPTIONS] NAME[:TAG]", "Upload an image to a registry",
               [Flag("all-tags", "a", BOOL, False, "Push all tags of an image to the repository"),
                Flag("disable-content-trust", None, BOOL, True, "Skip image signing"),
                Flag("quiet", "q", BOOL, False, "Suppress verbose output")],
               min_args=1, max_args=1)
LOGIN = Command("login", "berth login [OPTIONS] [SERVER]", "Authenticate to a registry",
                [Flag("password", "p", STRING, None, "Password"),
                 Flag("password-stdin", None, BOOL, False, "Take the password from stdin"),
                 Flag("username", "u", STRING, None, "Username")],
                max_args=1)
LOGOUT = Command("logout", "berth logout [SERVER]", "Log out from a registry", max_args=1)


class Display:
    """docker's DisplayJSONMessagesStream: on a terminal each layer keeps a line, redrawn in
    place (cursor up, redraw, cursor down); elsewhere messages with a progress bar are skipped."""

    def __init__(self, stream):
        self.stream = stream
        self.terminal = _isatty(stream)
        try:
            self.columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            self.columns = 80
        self.lines: dict[str, int] = {}

    def show(self, jm: dict) -> None:
        out = self.stream
        ident = jm.get("id", "")
        has_progress = "progressDetail" in jm
        diff = 0
        if ident and has_progress:
            line = self.lines.get(ident)
            if line is None:
                line = self.lines[ident] = len(self.lines)
                if self.terminal:
                    out.write("\n")
            diff = len(self.lines) - line
            if self.terminal and diff:
                out.write(f"\x1b[{diff}A")
        else:
            self.lines = {}
        detail = jm.get("progressDetail") or {}
        bar = render(detail.get("current", 0), detail.get("total", 0), self.columns) if detail else ""
        if self.terminal and has_progress:
            out.write("\x1b[2K\r")
            endl = "\r"
        elif bar:
            return
        else:
            endl = ""
        prefix = f"{ident}: " if ident else ""
        if has_progress and self.terminal:
            out.write(f"{prefix}{jm['status']} {bar}{endl}")
        else:
            out.write(f"{prefix}{jm['status']}{endl}\n")
        if ident and self.terminal and diff:
            out.write(f"\x1b[{diff}B")
        out.flush()


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def show_messages(messages, stream, quiet: bool = False):
    """Draw (or, quiet, only drain) a pull's or push's messages; returns the generator's value."""
    display = None if quiet else Display(stream)
    while True:
        try:
            jm = next(messages)
        except StopIteration as done:
            return done.value
        if display is not None:
            display.show(jm)


def pull_image(engine, ref: str, stream, quiet: bool = False, platform: str | None = None,
               all_tags: bool = False, tag_note: bool = True) -> None:
    """A pull drawn on `stream` the way docker's CLI draws it (also for run and create, which
    say nothing of the default tag)."""
    if tag_note and not quiet and "@" not in ref and ":" not in ref.rpartition("/")[2] and not all_tags:
        print("Using default tag: latest", file=stream)
    show_messages(transfers.pull(engine, ref, platform, all_tags), stream, quiet)


def cmd_pull(engine, argv) -> int:
    opts, args = parse_or_help(PULL, argv)
    if opts.help:
        return 0
    _content_trust(opts)
    pull_image(engine, args[0], sys.stdout, opts.quiet, opts.platform, opts.all_tags)
    print(transfers.full_name(args[0]) if not opts.all_tags else transfers.full_name(args[0]).rpartition(":")[0])
    return 0


def cmd_push(engine, argv) -> int:
    opts, args = parse_or_help(PUSH, argv)
    if opts.help:
        return 0
    _content_trust(opts)
    refs = transfers.tags_of(engine, args[0]) if opts.all_tags else [args[0]]
    for ref in refs:
        show_messages(transfers.push(engine, ref), sys.stdout, opts.quiet)
    if opts.quiet:
        print(transfers.full_name(args[0]))
    return 0


def _content_trust(opts) -> None:
    if not opts.disable_content_trust:
        raise BerthError("--disable-content-trust=false: image signing and verification (content trust) is not "
                         "supported")


def cmd_login(engine, argv) -> int:
    opts, args = parse_or_help(LOGIN, argv)
    if opts.help:
        return 0
    username, password = opts.username, opts.password
    if opts.password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
        if opts.password_stdin:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if opts.password_stdin:
        if not username:
            raise InvalidArgument("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\n").rstrip("\r")
    if not username and _isatty(sys.stdin):
        username = input("Username: ").strip()
    if not password and username and _isatty(sys.stdin):
        import getpass  # lazy: only an interactive login

        password = getpass.getpass("Password: ")
    stored_in = transfers.login(engine, args[0] if args else None, username or "", password or "")
    if stored_in:
        print(f"WARNING! Your credentials are stored unencrypted in '{stored_in}'.\n"
              "Configure a credential helper to remove this warning. See\n"
              "https://docs.docker.com/go/credential-store/\n", file=sys.stderr)
    print("Login Succeeded")
    return 0


def cmd_logout(engine, argv) -> int:
    opts, args = parse_or_help(LOGOUT, argv)
    if opts.help:
        return 0
    key, found = transfers.logout(engine, args[0] if args else None)
    print(f"Removing login credentials for {key}" if found else f"Not logged in to {key}")
    return 0
