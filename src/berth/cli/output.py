"""Printing results the way docker does: --format templates, tables, JSON."""

import sys

from berth import fastjson as json
from berth.errors import BerthError


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=4) + "\n")


def list_format(fmt: str | None, default: str) -> str:
    """The template a list command's --format stands for: "table" alone (or none) is the
    command's default table; "json" (docker 23+) one JSON object per line."""
    if not fmt or fmt == "table":
        return default
    return "{{json .}}" if fmt == "json" else fmt


def render_rows(fmt: str | None, default: str, rows: list, header: dict,
                prefixes: tuple = ("template parsing error", "template parsing error")) -> None:
    """docker's formatter: `table ...` formats get headers and aligned columns, plain
    templates print one line per row. A template that does not parse or fails on a row is
    an error that starts with prefixes[0] or prefixes[1] (docker's words for the command)."""
    sys.stdout.write(render_table_text(list_format(fmt, default), rows, header, prefixes))


def render_table_text(fmt: str, rows: list, header: dict,
                      prefixes: tuple = ("template parsing error", "template parsing error")) -> str:
    from berth.gotemplate import TemplateError, render_table  # lazy: not for inspect, which prints JSON

    try:
        return render_table(fmt, rows, header)
    except TemplateError as err:
        raise BerthError(f"{prefixes['executing' in str(err)]}: {err}") from None


def render_one(fmt: str, data) -> str:
    from berth.gotemplate import TemplateError, render  # lazy: not for inspect, which prints JSON

    try:
        return render(fmt, data, missingkey_error=True)
    except TemplateError as err:
        raise BerthError(f"template parsing error: {err}") from None


def render_inspected(fmt: str, record: dict, kind: str | None) -> str:
    """inspect's template, run as docker runs it: on the Go struct of a `kind` object first,
    and when that fails, on the JSON as maps (missing keys are errors there)."""
    from berth.gotemplate import TemplateError, parse  # lazy: not for inspect, which prints JSON

    try:
        template = parse(fmt)
    except TemplateError as err:
        raise BerthError(f"template parsing error: {err}") from None
    if kind is not None:
        from berth.cli.inspect_view import struct_view  # lazy: only inspect --format

        try:
            return template.execute(struct_view(kind, record))
        except TemplateError:
            pass
    try:
        return template.execute(record, missingkey_error=True)
    except TemplateError as err:
        raise BerthError(f"template parsing error: {err}") from None


def print_found(found: list, fmt: str | None, kinds: list | None = None) -> None:
    """inspect's output: each object through the template (as a Go struct of its kind, when
    `kinds` says), or all as one JSON array. Objects the template fails on are reported
    together after the others are printed."""
    if not fmt:
        print_json(found)
        return
    failed = []
    for i, item in enumerate(found):
        try:
            sys.stdout.write(render_inspected(fmt, item, kinds[i] if kinds else None) + "\n")
        except BerthError as err:  # docker goes on with the next object and reports at the end
            failed.append(str(err))
    if failed:
        raise BerthError("\n".join(failed))
