"""Go text/template semantics for --format, with expected outputs as Go and docker produce them."""

import copy
import pickle

import pytest

from berth.gotemplate import GoStruct, Template, TemplateError, parse, render, render_table


def error_of(text, data=None, **kwargs) -> str:
    with pytest.raises(TemplateError) as info:
        render(text, data, **kwargs)
    return str(info.value)


# --- fields and data model ---------------------------------------------------


def test_field_and_nested_field():
    data = {"Name": "web", "Config": {"Image": "nginx", "Env": ["A=1"]}, "State": {"Running": True}}
    assert render("{{.Name}} {{.Config.Image}} {{.State.Running}}", data) == "web nginx true"


def test_dot_alone_and_plain_text():
    assert render("id={{.}}!", "abc") == "id=abc!"
    assert render("no actions at all", {}) == "no actions at all"
    assert render("", {}) == ""


def test_missing_map_key_prints_no_value():
    assert render("{{.Foo}}", {}) == "<no value>"
    assert render("{{.Foo.Bar}}", {}) == "<no value>"


def test_missing_map_key_with_missingkey_error():
    assert error_of("{{.Foo}}", {}, missingkey_error=True) == (
        'template: :1:2: executing "" at <.Foo>: map has no entry for key "Foo"'
    )


def test_position_of_a_field_chain_is_its_last_field_like_go():
    assert error_of("{{.Foo.Bar}}", {}, missingkey_error=True) == (
        'template: :1:6: executing "" at <.Foo.Bar>: map has no entry for key "Foo"'
    )


def test_error_position_counts_lines_and_bytes():
    text = "line one\nnaïve {{.Foo}}"
    assert error_of(text, {}, missingkey_error=True) == (
        'template: :2:9: executing "" at <.Foo>: map has no entry for key "Foo"'
    )


def test_gostruct_missing_field_is_an_error():
    data = GoStruct("types.ContainerJSON", Name="/web")
    assert render("{{.Name}}", data) == "/web"
    assert error_of("{{.Foo}}", data) == (
        "template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type types.ContainerJSON"
    )


def test_gostruct_is_a_dict_that_survives_copy_and_pickle():
    data = GoStruct("types.State", {"Status": "running"}, Pid=42)
    assert data == {"Status": "running", "Pid": 42}
    assert data.go_type == "types.State"
    for clone in (copy.copy(data), copy.deepcopy(data), pickle.loads(pickle.dumps(data))):
        assert isinstance(clone, GoStruct)
        assert clone.go_type == "types.State" and clone == data


def test_field_of_nil_is_an_error():
    assert error_of("{{.A.B}}", {"A": None}) == (
        'template: :1:4: executing "" at <.A.B>: nil pointer evaluating interface {}.B'
    )


def test_field_of_a_string_is_an_error():
    assert error_of("{{.Name.First}}", {"Name": "x"}) == (
        "template: :1:7: executing \"\" at <.Name.First>: can't evaluate field First in type interface {}"
    )
    assert error_of("{{.First}}", "x") == (
        "template: :1:2: executing \"\" at <.First>: can't evaluate field First in type string"
    )


def test_nil_data():
    assert render("{{.}}", None) == "<no value>"
    assert render("{{.Foo}}", None) == "<no value>"
    assert error_of("{{.Foo}}", None, missingkey_error=True) == (
        'template: :1:2: executing "" at <.Foo>: nil data; no entry for key "Foo"'
    )


def test_map_field_with_arguments_is_an_error():
    assert error_of("{{.Name 1}}", {"Name": "x"}) == (
        'template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'
    )


class _Summary:
    """A Python object stands for a Go struct with fields and methods."""

    go_type = "*formatter.ContainerContext"

    def __init__(self):
        self.ID = "abc"
        self.labels = {"com.example": "yes"}

    def Label(self, name):
        return self.labels.get(name, "")

    def Names(self):
        return "web"

    def Fails(self):
        raise ValueError("boom")


def test_object_attributes_and_methods():
    assert render('{{.ID}} {{.Names}} {{.Label "com.example"}} {{"com.example" | .Label}}', _Summary()) == (
        "abc web yes yes"
    )
    assert error_of("{{.Nope}}", _Summary()) == (
        "template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext"
    )
    assert error_of("{{.Fails}}", _Summary()) == (
        'template: :1:2: executing "" at <.Fails>: error calling Fails: boom'
    )


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


# --- range ---------------------------------------------------------------------


def test_range_over_list():
    assert render("{{range .}}[{{.}}]{{end}}", ["a", "b"]) == "[a][b]"


def test_range_with_index_and_element():
    assert render("{{range $i, $e := .}}{{$i}}={{$e}} {{end}}", ["a", "b"]) == "0=a 1=b "


def test_range_with_one_variable_gets_the_element():
    assert render("{{range $e := .}}{{$e}}{{end}}", ["x", "y"]) == "xy"


def test_range_over_map_is_sorted_by_key():
    data = {"b": 2, "c": 3, "a": 1}
    assert render("{{range $k, $v := .}}{{$k}}:{{$v}};{{end}}", data) == "a:1;b:2;c:3;"
    assert render("{{range .}}{{.}}{{end}}", data) == "123"


def test_range_else_for_empty_and_missing():
    text = "{{range .L}}{{.}}{{else}}empty{{end}}"
    assert render(text, {"L": []}) == "empty"
    assert render(text, {"L": {}}) == "empty"
    assert render(text, {"L": None}) == "empty"
    assert render(text, {}) == "empty"


def test_range_over_int():
    assert render("{{range 3}}{{.}}{{end}}", None) == "012"
    assert render("{{range $i := .}}<{{$i}}>{{end}}", 2) == "<0><1>"


def test_range_break_and_continue():
    data = [1, 2, 3, 4]
    assert render("{{range .}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", data) == "12"
    assert render("{{range .}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", data) == "134"


def test_break_only_leaves_the_inner_range():
    text = "{{range .}}{{range .}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}};{{end}}"
    assert render(text, [[1, 2, 3], [4, 2]]) == "1;4;"


def test_dollar_is_the_root_inside_range_and_with():
    data = {"Name": "web", "Ports": ["80", "443"]}
    assert render("{{range .Ports}}{{$.Name}}:{{.}} {{end}}", data) == "web:80 web:443 "
    assert render("{{with .Ports}}{{$.Name}}{{end}}", data) == "web"


def test_range_over_a_string_is_an_error():
    assert error_of("{{range .S}}{{end}}", {"S": "ab"}) == (
        "template: :1:8: executing \"\" at <.S>: range can't iterate over ab"
    )


# --- if / with -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, branch",
    [
        (1, "a"),
        (0, "else"),
        (0.0, "else"),
        ("", "else"),
        ("x", "a"),
        ([], "else"),
        ([0], "a"),
        ({}, "else"),
        (None, "else"),
        (False, "else"),
        (True, "a"),
        (GoStruct("T"), "a"),  # structs are always true
    ],
)
def test_if_truthiness(value, branch):
    assert render("{{if .V}}a{{else}}else{{end}}", {"V": value}) == branch


def test_if_else_if_chain():
    text = "{{if .A}}a{{else if .B}}b{{else if .C}}c{{else}}none{{end}}"
    assert render(text, {"A": 1}) == "a"
    assert render(text, {"B": 1}) == "b"
    assert render(text, {"C": 1}) == "c"
    assert render(text, {}) == "none"


def test_with_sets_dot_and_has_else():
    text = "{{with .Health}}{{.Status}}{{else}}no healthcheck{{end}}"
    assert render(text, {"Health": {"Status": "healthy"}}) == "healthy"
    assert render(text, {"Health": None}) == "no healthcheck"


def test_else_with():
    text = "{{with .A}}a={{.}}{{else with .B}}b={{.}}{{else}}none{{end}}"
    assert render(text, {"A": 1}) == "a=1"
    assert render(text, {"B": 2}) == "b=2"
    assert render(text, {}) == "none"


# --- variables -------------------------------------------------------------------


def test_variable_declaration_prints_nothing():
    assert render("{{$name := .Name}}<{{$name}}>", {"Name": "web"}) == "<web>"


def test_variable_assignment_reaches_outer_scope():
    assert render('{{$x := "a"}}{{if true}}{{$x = "b"}}{{end}}{{$x}}', {}) == "b"
    assert render("{{$last := 0}}{{range .}}{{$last = .}}{{end}}{{$last}}", [1, 2, 3]) == "3"


def test_variable_declared_in_a_block_shadows_until_end():
    assert render("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", {}) == "21"


def test_variable_field_chain():
    data = {"Config": {"Labels": {"app": "web"}}}
    assert render("{{$c := .Config}}{{$c.Labels.app}}", data) == "web"


def test_variable_out_of_scope_is_a_parse_error():
    assert error_of("{{if true}}{{$y := 1}}{{end}}{{$y}}") == 'template: :1: undefined variable "$y"'


def test_if_with_declaration_is_visible_in_else():
    assert render("{{if $v := .V}}{{$v}}{{else}}[{{$v}}]{{end}}", {"V": 0}) == "[0]"


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


# --- pipelines, parentheses, chains -----------------------------------------------


def test_pipeline_passes_value_as_last_argument():
    assert render("{{.Name | upper}}", {"Name": "web"}) == "WEB"
    assert render('{{"abc" | printf "%s-%s" "x"}}', {}) == "x-abc"
    assert render('{{.Name | printf "%q" | len}}', {"Name": "ab"}) == "4"


def test_parenthesized_pipeline_as_argument():
    assert render('{{len (index .M "k")}}', {"M": {"k": [1, 2, 3]}}) == "3"
    assert render('{{printf "%s/%s" (lower .A) (upper .B)}}', {"A": "X", "B": "y"}) == "x/Y"


def test_field_chain_on_parenthesized_expression():
    data = {"L": [{"Name": "first"}, {"Name": "second"}]}
    assert render("{{(index .L 1).Name}}", data) == "second"


def test_literals():
    assert render('{{"tab\\there \\u00e9 \\x41"}}', {}) == "tab\there é A"
    assert render("{{`raw \\n string`}}", {}) == "raw \\n string"
    assert render("{{42}} {{-1}} {{0x1F}} {{0o17}} {{017}} {{1_000}}", {}) == "42 -1 31 15 15 1000"
    assert render("{{1.5}} {{1e3}} {{3.0}}", {}) == "1.5 1000 3"
    assert render("{{'a'}} {{'\\n'}}", {}) == "97 10"
    assert render("{{true}} {{false}}", {}) == "true false"
    assert render("{{print nil}}", {}) == "<nil>"


# --- builtin functions ----------------------------------------------------------------


def test_and_or_return_the_deciding_value():
    assert render("{{and 1 0 2}}|{{and 1 2}}|{{or 0 \"\" \"x\"}}|{{or 0 \"\"}}", {}) == "0|2|x|"
    assert render('{{or .Missing "default"}}', {}) == "default"


def test_and_or_short_circuit():
    data = {"L": [1]}
    assert render("{{or 1 (index .L 99)}}", data) == "1"
    assert render("{{and 0 (index .L 99)}}", data) == "0"


def test_not():
    assert render("{{not 0}} {{not 1}} {{not .Missing}} {{not \"\"}}", {}) == "true false true true"


def test_len():
    data = {"S": "héllo", "L": [1, 2], "M": {"a": 1}}
    assert render("{{len .S}} {{len .L}} {{len .M}}", data) == "6 2 1"  # Go counts bytes of strings
    assert error_of("{{len 3}}") == 'template: :1:2: executing "" at <len 3>: error calling len: len of type int'


def test_index():
    data = {"M": {"a": ["x", "y"]}, "L": [[1, 2], [3, 4]], "S": "AB"}
    assert render('{{index .M "a" 1}} {{index .L 1 0}} {{index .S 1}}', data) == "y 3 66"
    assert error_of("{{index .L 5}}", data) == (
        'template: :1:2: executing "" at <index .L 5>: error calling index: index out of range: 5'
    )


def test_index_missing_key():
    assert render('{{index .M "nope"}}', {"M": {"a": 1}}) == "<no value>"
    # a map of strings (Labels, Options) gives the empty string, as docker's typed maps do
    assert render('[{{index .Labels "nope"}}]', {"Labels": {"a": "b"}}) == "[]"
    assert render('[{{index .Labels "nope"}}]', {"Labels": {}}) == "[]"


def test_slice():
    assert render("{{slice .L 1 3}} {{slice .L 2}} {{slice .S 1 3}}", {"L": [1, 2, 3, 4], "S": "abcd"}) == (
        "[2 3] [3 4] bc"
    )
    assert error_of("{{slice .L 3 1}}", {"L": [1, 2, 3]}) == (
        'template: :1:2: executing "" at <slice .L 3 1>: error calling slice: invalid slice index: 3 > 1'
    )


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


def test_eq_and_ne():
    assert render('{{eq .A "x"}} {{eq .A "y" "x"}} {{eq 1 2}} {{ne 1 2}} {{ne "a" "a"}}', {"A": "x"}) == (
        "true true false true false"
    )
    assert render('{{eq .Missing "x"}} {{eq .Missing nil}}', {}) == "false true"
    assert render('{{if eq .State "running"}}up{{end}}', {"State": "running"}) == "up"


def test_ordered_comparisons():
    assert render("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 2 2}}", {}) == "true true false true"
    assert render('{{lt "a" "b"}} {{gt 1.5 0.5}}', {}) == "true true"


def test_comparison_errors():
    assert error_of('{{eq 1 "a"}}') == (
        'template: :1:2: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison'
    )
    assert error_of("{{lt 1 1.5}}") == (
        'template: :1:2: executing "" at <lt 1 1.5>: error calling lt: incompatible types for comparison'
    )
    assert error_of("{{lt true false}}") == (
        'template: :1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison'
    )
    assert error_of("{{eq 1}}") == (
        'template: :1:2: executing "" at <eq 1>: error calling eq: missing argument for comparison'
    )


def test_wrong_number_of_arguments():
    assert error_of("{{len}}") == 'template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 0'
    assert error_of("{{eq}}") == (
        'template: :1:2: executing "" at <eq>: wrong number of args for eq: want at least 1 got 0'
    )
    assert error_of("{{lt 1 2 3}}") == 'template: :1:2: executing "" at <lt>: wrong number of args for lt: want 2 got 3'


def test_escapers():
    assert render("{{html .}}", "<a href=\"x\">'&'</a>") == "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
    assert render("{{js .}}", "a'b\"c<d>=&\\") == "a\\'b\\\"c\\u003Cd\\u003E\\u003D\\u0026\\\\"
    assert render("{{urlquery .}}", "a b&c=d/é") == "a+b%26c%3Dd%2F%C3%A9"
    assert render("{{html 1 2}}|{{html .Missing}}", {}) == "1 2|&lt;no value&gt;"


# --- docker's functions -------------------------------------------------------------------


def test_json_of_a_map_sorts_keys_and_does_not_escape_html():
    data = {"b": 1, "a": "<x&y>", "c": [1, "x", None, True, 2.5]}
    assert render("{{json .}}", data) == '{"a":"<x&y>","b":1,"c":[1,"x",null,true,2.5]}'


def test_json_of_a_struct_keeps_field_order():
    data = GoStruct("types.Config", {"Image": "nginx", "Env": None, "Labels": {"z": "1", "a": "2"}})
    assert render("{{json .}}", data) == '{"Image":"nginx","Env":null,"Labels":{"a":"2","z":"1"}}'


def test_json_strings_and_numbers_like_go():
    assert render("{{json .}}", "é\u2028\n\t\x01\"\\") == '"é\\u2028\\n\\t\\u0001\\"\\\\"'
    assert render("{{json .}}", [3.0, 1e21, 1e20, 1e-7, 0.000001, -0.0]) == (
        "[3,1e+21,100000000000000000000,1e-7,0.000001,-0]"
    )
    assert render("{{json .Missing}}|{{json .}}", {}) == "null|{}"
    assert render("{{json .}}", float("nan")) == ""  # docker prints nothing when encoding fails


def test_split_and_join():
    assert render('{{split "a,b,c" ","}}', {}) == "[a b c]"
    assert render('{{index (split "a:b" ":") 1}}', {}) == "b"
    assert render('{{split "ab" ""}}', {}) == "[a b]"
    assert render('{{join .L ", "}}', {"L": ["a", "b"]}) == "a, b"
    assert render('{{join .Missing ","}}', {}) == ""


def test_case_functions():
    assert render('{{title "hello wORLD foo_bar x-y"}}', {}) == "Hello WORLD Foo_bar X-Y"
    assert render("{{lower .}}|{{upper .}}", "MiXed") == "mixed|MIXED"


def test_pad_and_truncate():
    assert render('[{{pad "x" 2 3}}][{{pad "" 2 3}}]', {}) == "[  x   ][]"
    assert render('{{truncate "abcdef" 3}}|{{truncate "ab" 3}}|{{truncate .ID 12}}', {"ID": "0123456789abcdef"}) == (
        "abc|ab|0123456789ab"
    )


def test_function_argument_types():
    assert error_of("{{lower 3}}") == 'template: :1:8: executing "" at <3>: expected string; found 3'
    assert error_of("{{.N | lower}}", {"N": 3}) == (
        'template: :1:7: executing "" at <lower>: wrong type for value; expected string; got int'
    )
    assert error_of('{{truncate "abc" "x"}}') == (
        'template: :1:17: executing "" at <"x">: expected integer; found "x"'
    )


# --- define / template / block ---------------------------------------------------------


def test_define_and_template():
    text = '{{define "T"}}<{{.}}>{{end}}{{template "T" .X}}{{template "T" "lit"}}'
    assert render(text, {"X": "x"}) == "<x><lit>"


def test_template_without_pipeline_gets_nil_dot():
    assert render('{{define "T"}}{{.}}{{end}}{{template "T"}}', {}) == "<no value>"


def test_template_dollar_is_its_own_dot():
    text = '{{define "T"}}{{$.A}}{{end}}{{template "T" .B}}'
    assert render(text, {"B": {"A": "inner"}}) == "inner"


def test_block_defines_and_runs():
    assert render('{{block "B" .}}default {{.}}{{end}}!', "d") == "default d!"


def test_defined_template_does_not_see_outer_variables():
    assert error_of('{{$x := 1}}{{define "T"}}{{$x}}{{end}}') == 'template: :1: undefined variable "$x"'


def test_undefined_template():
    assert error_of('{{template "nope"}}', {}) == (
        'template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined'
    )


def test_error_inside_a_defined_template_names_it():
    text = '{{define "T"}}{{.Foo}}{{end}}{{template "T" .}}'
    assert error_of(text, {}, missingkey_error=True) == (
        'template: :1:16: executing "T" at <.Foo>: map has no entry for key "Foo"'
    )


def test_recursive_template_is_stopped():
    with pytest.raises(TemplateError, match="exceeded maximum template depth"):
        render('{{define "T"}}{{template "T" .}}{{end}}{{template "T" .}}', {})


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


def test_other_execution_errors():
    assert error_of("{{nil}}") == 'template: :1:2: executing "" at <nil>: nil is not a command'
    assert error_of('{{"x" 1}}') == 'template: :1:2: executing "" at <"x">: can\'t give argument to non-function "x"'


def test_a_parsed_template_can_be_executed_many_times():
    tmpl = parse("{{.Name}}")
    assert isinstance(tmpl, Template)
    assert [tmpl.execute({"Name": n}) for n in ("a", "b")] == ["a", "b"]


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
