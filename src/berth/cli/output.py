"""Printing results the way docker does: --format templates, tables, JSON."""

import sys

from berth import fastjson as json
from berth.errors import BerthError


def print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=4) + "\n")


def render_rows(fmt: str | None, default: str, rows: list, header: dict) -> None:
    """docker's formatter: `table ...` formats get headers and aligned columns, plain
    templates print one line per row."""
    from berth.gotemplate import TemplateError, render_table  # lazy: not for inspect, which prints JSON

    try:
        sys.stdout.write(render_table(fmt or default, rows, header))
    except TemplateError as err:
        raise BerthError(f"template parsing error: {err}" if "executing" not in str(err) else str(err)) from None


def render_one(fmt: str, data) -> str:
    from berth.gotemplate import TemplateError, render  # lazy: not for inspect, which prints JSON

    try:
        return render(fmt, data, missingkey_error=True)
    except TemplateError as err:
        raise BerthError(f"template parsing error: {err}") from None


def print_found(found: list, fmt: str | None) -> None:
    """inspect's output: each object through the template, or all as one JSON array."""
    if fmt:
        for item in found:
            sys.stdout.write(render_one(fmt, item) + "\n")
    else:
        print_json(found)
