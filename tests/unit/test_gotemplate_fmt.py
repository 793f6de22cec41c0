"""Go's fmt as templates print with it (berth.gotemplate.fmt): %v of every kind of value,
print/println, and printf's verbs, flags, width and precision."""

import pytest

from berth.gotemplate import GoStruct, render

# --- printing values like fmt's %v -------------------------------------------


@pytest.mark.parametrize(
    "value, printed",
    [
        ("text", "text"),
        (42, "42"),
        (-7, "-7"),
        (True, "true"),
        (False, "false"),
        (None, "<nil>"),
        (3.0, "3"),
        (0.5, "0.5"),
        (-2.5, "-2.5"),
        (0.1 + 0.2, "0.30000000000000004"),
        (123456.0, "123456"),
        (1234567.0, "1.234567e+06"),
        (1e6, "1e+06"),
        (1e21, "1e+21"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (float("inf"), "+Inf"),
        (float("nan"), "NaN"),
        (["a", "b", "c"], "[a b c]"),
        ((1, 2), "[1 2]"),
        ([], "[]"),
        ({"b": 2, "a": 1}, "map[a:1 b:2]"),
        ({}, "map[]"),
        ({"a": [1, {"b": None}]}, "map[a:[1 map[b:<nil>]]]"),
        (GoStruct("T", Z=1.5, A="s", L=["x"]), "{1.5 s [x]}"),
    ],
)


def test_printing_values(value, printed):
    assert render("{{.V}}", {"V": value}) == printed


# --- print, println, printf ----------------------------------------------------------------


def test_print_and_println():
    assert render('{{print 1 2 "a" 3}}', {}) == "1 2a3"  # spaces only between non-strings
    assert render('{{print "a" "b"}}', {}) == "ab"
    assert render('{{println 1 "a" .L}}', {"L": [1]}) == "1 a [1]\n"
    assert render("{{print .Missing}}", {}) == "<nil>"


@pytest.mark.parametrize(
    "fmt, args, out",
    [
        ('"%s|%v|%d"', '"x" .L 42', "x|[1 2]|42"),
        ('"%5.2f|%-5d|%05d|%%"', "3.14159 42 42", " 3.14|42   |00042|%"),
        ('"%x|%X|%#x|%o|%b|%c"', "255 255 255 8 5 65", "ff|FF|0xff|10|101|A"),
        ('"%q|%t|%+d|%6.2f|%08.3f"', '"hi\\n" true 5 1.5 -3.14159', '"hi\\n"|true|+5|  1.50|-003.142'),
        ('"%e|%g|%.3g|%G"', "123456.0 1e-7 3.14159 1e-7", "1.234560e+05|1e-07|3.14|1E-07"),
        ('"%5s|%-5s|%.2s|%x"', '"ab" "ab" "abcdef" "hi"', "   ab|ab   |ab|6869"),
        ('"%v|%d|%T|%T"', "nil nil 1 .L", "<nil>|%!d(<nil>)|int|[]interface {}"),
        ('"%d|%s|%f"', '"x" 5 1', "%!d(string=x)|%!s(int=5)|%!f(int=1)"),
        ('"%d %d"', "1", "1 %!d(MISSING)"),
        ('"%d"', "1 2", "1%!(EXTRA int=2)"),
        ('"%*d|%.*f"', "4 7 1 2.25", "   7|2.2"),
        ('"%v|%+v"', ".S .S", "{1 x}|{A:1 B:x}"),
    ],
)


def test_printf(fmt, args, out):
    data = {"L": [1, 2], "S": GoStruct("T", A=1, B="x")}
    assert render(f"{{{{printf {fmt} {args}}}}}", data) == out
