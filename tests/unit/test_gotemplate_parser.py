"""Lexing and parsing Go templates (berth.gotemplate.lexer and .parser): trim markers,
comments, literals, and parse errors with Go's messages."""

import pytest

from berth.gotemplate import TemplateError, parse, render

# --- whitespace trimming and comments --------------------------------------------


def test_trim_markers_remove_adjacent_whitespace():
    assert render("a  {{- .X -}}  b", {"X": "X"}) == "aXb"
    assert render("a\n\t {{- .X}}\n", {"X": "X"}) == "aX\n"
    assert render("{{.X -}}\n\n  b", {"X": "X"}) == "Xb"


def test_minus_without_space_is_a_number():
    assert render("{{-3}}", {}) == "-3"


def test_trimming_in_range_lines():
    text = "{{range .}}\n  {{- .}}\n{{- end}}"
    assert render(text, ["a", "b"]) == "ab"


def test_comments():
    assert render("a{{/* a comment */}}b", {}) == "ab"
    assert render("a {{- /* trimmed */ -}} b", {}) == "ab"
    assert render("a{{/* multi\nline */}}b", {}) == "ab"


# --- literals ------------------------------------------------------------------------------


def test_literals():
    assert render('{{"tab\\there \\u00e9 \\x41"}}', {}) == "tab\there é A"
    assert render("{{`raw \\n string`}}", {}) == "raw \\n string"
    assert render("{{42}} {{-1}} {{0x1F}} {{0o17}} {{017}} {{1_000}}", {}) == "42 -1 31 15 15 1000"
    assert render("{{1.5}} {{1e3}} {{3.0}}", {}) == "1.5 1000 3"
    assert render("{{'a'}} {{'\\n'}}", {}) == "97 10"
    assert render("{{true}} {{false}}", {}) == "true false"
    assert render("{{print nil}}", {}) == "<nil>"


# --- parse errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("{{foo}}", 'template: :1: function "foo" not defined'),
        ("{{.Foo", "template: :1: unclosed action"),
        ("{{.Foo\n", "template: :2: unclosed action started at :1"),
        ("{{.Foo }", 'template: :1: unexpected "}" in operand'),
        ("{{.Foo}", "template: :1: bad character U+007D '}'"),
        ("{{if .X}}a", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{range .}}{{else}}{{else}}{{end}}", "template: :1: expected end; found {{else}}"),
        ("{{$x}}", 'template: :1: undefined variable "$x"'),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{continue}}", "template: :1: {{continue}} outside {{range}}"),
        ('{{"abc}}', "template: :1: unterminated quoted string"),
        ("{{`abc}}", "template: :1: unterminated raw quoted string"),
        ("{{}}", "template: :1: missing value for command"),
        ("{{if}}{{end}}", "template: :1: missing value for if"),
        ("{{.X | 3}}", "template: :1: non executable command in pipeline stage 2"),
        ("{{/* x }}", "template: :1: unclosed comment"),
        ("{{/* x */ .X}}", "template: :1: comment ends before closing delimiter"),
        ("{{(.X}}", "template: :1: unclosed left paren"),
        ("{{.X)}}", "template: :1: unexpected right paren"),
        ("{{3x}}", 'template: :1: bad number syntax: "3x"'),
        ("{{range $i, $e, $f := .}}{{end}}", "template: :1: too many declarations in range"),
        ("{{with $x, $y := .}}{{end}}", "template: :1: too many declarations in with"),
        ('{{"a".B}}', 'template: :1: unexpected . after term "\\"a\\""'),
        ('{{"\\q"}}', "template: :1: invalid syntax"),
        (
            '{{define "a"}}x{{end}}{{define "a"}}y{{end}}',
            'template: :1: template: multiple definition of template "a"',
        ),
        ("a\nb\n{{foo}}", 'template: :3: function "foo" not defined'),
    ],
)


def test_parse_errors(text, message):
    with pytest.raises(TemplateError) as info:
        parse(text)
    assert str(info.value) == message


def test_template_name_appears_in_errors():
    with pytest.raises(TemplateError, match=r'^template: fmt:1: function "foo" not defined$'):
        parse("{{foo}}", "fmt")
    with pytest.raises(TemplateError, match=r'^template: fmt:1:2: executing "fmt" at <\.A>'):
        parse("{{.A}}", "fmt").execute({}, missingkey_error=True)
