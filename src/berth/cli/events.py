"""`berth events` (also `system events`): this root's events as docker's CLI prints them:
the past ones within --since/--until, then live ones until --until or Ctrl-C, filtered
(--filter) and formatted (default line, `json`, or a Go template)."""

import os
import sys
import time

from berth.cli.flags import LIST, STRING, Command, Flag, parse_or_help
from berth.engine import events
from berth.errors import BerthError
from berth.gotemplate import GoStruct, TemplateError, parse
from berth.gotime import get_timestamp, parse_unix_timestamp

EVENTS = Command("events", "berth events [OPTIONS]", "Get real time events from the server",
                 [Flag("filter", "f", LIST, [], "Filter output based on conditions provided", "filter"),
                  Flag("format", None, STRING, "", "Format output using a custom template: 'json' (JSON "
                       "format) or a Go template"),
                  Flag("since", None, STRING, "", "Show all events created since timestamp"),
                  Flag("until", None, STRING, "", "Stream events until this timestamp")],
                 max_args=0)

FORMAT_ERROR_EXIT = 64  # docker's CLI: a --format it cannot parse or run on an empty event


def cmd_events(engine, argv: list[str]) -> int:
    opts, _ = parse_or_help(EVENTS, argv)
    if opts.help:
        return 0
    try:
        template = _template(opts.format)
    except TemplateError as err:  # docker's CLI words and exit code for a bad --format
        print(f"Error parsing format: {err}", file=sys.stderr)
        return FORMAT_ERROR_EXIT
    now_ns = time.time_ns()
    since, since_ns = _bound(opts.since, now_ns)
    until, until_ns = _bound(opts.until, now_ns)
    if until_ns is not None and since_ns is not None and until_ns < since_ns:
        print(f"Error response from daemon: `since` time ({since}) cannot be after `until` time ({until})",
              file=sys.stderr)
        return 1
    stream = events.watch(engine, since_ns, until_ns, events.parse_filters(opts.filter))
    out = sys.stdout
    try:
        for msg in stream:
            out.write(_render(template, msg) if template is not None else pretty(msg))
            out.flush()
    except KeyboardInterrupt:  # docker's CLI ends quietly on Ctrl-C
        pass
    except BrokenPipeError:
        _silence_stdout()
    finally:
        stream.close()
    return 0


def _bound(value: str, now_ns: int) -> tuple[str, int | None]:
    """--since/--until as docker's CLI converts them (timetypes.GetTimestamp) and its daemon
    reads them back: (the converted text, nanoseconds) or ("", None) when not given."""
    if value == "":
        return "", None
    try:
        stamp = get_timestamp(value, now_ns)
        seconds, nanos = parse_unix_timestamp(stamp)
    except ValueError as err:
        raise BerthError(str(err)) from None
    return stamp, seconds * 1_000_000_000 + nanos


def pretty(msg: dict) -> str:
    """docker's default line: local time with nine fraction digits, type, action, actor ID,
    then the attributes sorted, in parentheses."""
    seconds, nanos = divmod(msg.get("timeNano") or msg.get("time", 0) * 1_000_000_000, 1_000_000_000)
    t = time.localtime(seconds)
    offset = abs(t.tm_gmtoff)
    zone = "Z" if not offset else f"{'+' if t.tm_gmtoff > 0 else '-'}{offset // 3600:02d}:{offset % 3600 // 60:02d}"
    stamp = (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
             f".{nanos:09d}{zone}")
    actor = msg.get("Actor") or {}
    line = f"{stamp} {msg.get('Type', '')} {msg.get('Action', '')} {actor.get('ID', '')}"
    attributes = actor.get("Attributes") or {}
    if attributes:
        line += " (" + ", ".join(f"{k}={attributes[k]}" for k in sorted(attributes)) + ")"
    return line + "\n"


class Message(GoStruct):
    """docker's events.Message for templates: Go's field names for `.ID`, `.Status`...; its
    JSON names, empty omitempty fields left out, for `{{json .}}`."""

    __slots__ = ()
    JSON = (("status", "Status", True), ("id", "ID", True), ("from", "From", True), ("Type", "Type", False),
            ("Action", "Action", False), ("Actor", "Actor", False), ("scope", "Scope", False),
            ("time", "Time", True), ("timeNano", "TimeNano", True))
    GO_NAME = {json_name: go_name for json_name, go_name, _ in JSON}

    def __iter__(self):
        return iter([json_name for json_name, go_name, omitempty in self.JSON
                     if not omitempty or dict.__getitem__(self, go_name)])

    def __getitem__(self, key):
        return dict.__getitem__(self, self.GO_NAME.get(key, key))


def message_value(msg: dict, go_type: str = "events.Message") -> Message:
    actor = msg.get("Actor") or {}
    return Message(go_type, Status=msg.get("status", ""), ID=msg.get("id", ""), From=msg.get("from", ""),
                   Type=msg.get("Type", ""), Action=msg.get("Action", ""),
                   Actor=GoStruct("events.Actor", ID=actor.get("ID", ""), Attributes=actor.get("Attributes") or {}),
                   Scope=msg.get("scope", ""), Time=msg.get("time", 0), TimeNano=msg.get("timeNano", 0))


def _template(fmt: str):
    """docker's makeTemplate: "json" is {{json .}}; a template is tried on an empty event
    first, so a bad field fails now (exit 64), not at the first event."""
    if not fmt:
        return None
    if fmt == "json":
        fmt = "{{json .}}"
    template = parse(fmt)
    template.execute(message_value({}, "*events.Message"))
    return template


def _render(template, msg: dict) -> str:
    try:
        return template.execute(message_value(msg)) + "\n"
    except TemplateError as err:
        raise BerthError(str(err)) from None


def _silence_stdout() -> None:
    """Our reader went away: what is still buffered goes nowhere, so exiting does not complain."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, sys.stdout.fileno())
    os.close(null)
