"""docker's formatter (render_table) and Go's text/tabwriter alignment (berth.gotemplate.tabwriter)."""

import pytest

from berth.gotemplate import GoStruct, TemplateError, render_table

# --- render_table: docker's formatter and tabwriter --------------------------------------------


HEADER = {"ID": "CONTAINER ID", "Image": "IMAGE", "Status": "STATUS"}


ROWS = [
    {"ID": "abc123", "Image": "busybox", "Status": "Up"},
    {"ID": "d", "Image": "nginx:latest", "Status": "Exited (0)"},
]


def test_table_aligns_columns_under_the_header():
    out = render_table("table {{.ID}}\t{{.Image}}\t{{.Status}}", ROWS, HEADER)
    assert out == (
        "CONTAINER ID   IMAGE          STATUS\n"
        "abc123         busybox        Up\n"
        "d              nginx:latest   Exited (0)\n"
    )


def test_table_accepts_backslash_t_as_written_on_a_command_line():
    plain = render_table("table {{.ID}}\t{{.Image}}", ROWS, HEADER)
    assert render_table("table {{.ID}}\\t{{.Image}}", ROWS, HEADER) == plain


def test_table_columns_are_at_least_ten_wide():
    out = render_table("table {{.A}}\t{{.B}}", [{"A": "x", "B": "y"}], {"A": "A", "B": "B"})
    assert out == "A         B\nx         y\n"


def test_table_with_no_rows_prints_the_header():
    assert render_table("table {{.ID}}\t{{.Image}}", [], HEADER) == "CONTAINER ID   IMAGE\n"


def test_table_keeps_padding_before_an_empty_last_cell():
    out = render_table("table {{.A}}\t{{.B}}", [{"A": "x", "B": ""}], {"A": "A", "B": "B"})
    assert out == "A         B\nx         \n"


def test_table_header_keeps_titles_but_pads():
    out = render_table("table {{.Image | upper}}\t{{pad .ID 1 1}}|", [{"ID": "abc", "Image": "nginx"}], HEADER)
    assert out == "IMAGE      CONTAINER ID |\nNGINX      abc |\n"


def test_table_without_a_header_still_aligns():
    assert render_table("table {{.A}}\t{{.B}}", [{"A": "x", "B": "y"}]) == "x         y\n"


def test_tabwriter_column_blocks_follow_consecutive_lines():
    rows = [{"L": "a\tb\tc"}, {"L": "aaaa\tb"}, {"L": "x"}, {"L": "y\tz"}]
    out = render_table("table {{.L}}", rows)
    assert out == "a         b         c\naaaa      b\nx\ny         z\n"


def test_non_table_format_prints_one_line_per_row():
    assert render_table("{{.ID}}: {{.Image}}", ROWS, HEADER) == "abc123: busybox\nd: nginx:latest\n"
    assert render_table("{{.ID}}", [], HEADER) == ""
    assert render_table(" {{.ID}} ", ROWS[:1]) == "abc123\n"  # docker trims surrounding spaces


def test_table_row_errors_are_go_messages():
    with pytest.raises(TemplateError) as info:
        render_table("table {{.ID}}\t{{.Nope}}", [GoStruct("*formatter.ContainerContext", ID="x")], HEADER)
    assert str(info.value) == (
        "template: :1:10: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext"
    )
    with pytest.raises(TemplateError, match='function "nope" not defined'):
        render_table("table {{nope}}", [], HEADER)
