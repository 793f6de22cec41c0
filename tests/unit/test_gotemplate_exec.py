"""Executing Go templates (berth.gotemplate.exec): fields, control structures, variables,
functions and {{define}}, with expected outputs as Go and docker produce them."""

import copy
import os
import pickle
import subprocess
import sys

import pytest

from berth.gotemplate import GoStruct, Template, TemplateError, parse, render


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


# --- execution errors and reuse ------------------------------------------------------------


def test_other_execution_errors():
    assert error_of("{{nil}}") == 'template: :1:2: executing "" at <nil>: nil is not a command'
    assert error_of('{{"x" 1}}') == 'template: :1:2: executing "" at <"x">: can\'t give argument to non-function "x"'


def test_a_parsed_template_can_be_executed_many_times():
    tmpl = parse("{{.Name}}")
    assert isinstance(tmpl, Template)
    assert [tmpl.execute({"Name": n}) for n in ("a", "b")] == ["a", "b"]


# --- start-up: only what a template uses is imported -------------------------------------------


def _modules_after(code: str) -> set:
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": src}).stdout
    return {m for m in out.split() if m.startswith("berth.")}


def test_printing_strings_loads_neither_fmt_nor_tabwriter():
    """`ps --format` and `inspect --format` of strings pay only for the lexer, parser and executor."""
    loaded = _modules_after("from berth.gotemplate import render\nrender('{{.A}} {{.B}}', {'A': 'x', 'B': 'y'})")
    assert loaded == {"berth.gotemplate", "berth.gotemplate.values", "berth.gotemplate.lexer",
                      "berth.gotemplate.parser", "berth.gotemplate.exec"}


def test_fmt_and_tabwriter_load_when_needed():
    loaded = _modules_after("from berth.gotemplate import render_table\n"
                            "print(render_table('table {{.A}}\\t{{.N}}', [{'A': 'x', 'N': 1}], {'A': 'A', 'N': 'N'}))")
    assert {"berth.gotemplate.fmt", "berth.gotemplate.tabwriter"} <= loaded
