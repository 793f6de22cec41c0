"""berth.fastjson: JSON through the C accelerator without `import json`. Torn input (a file
cut short by a kill) must be a ValueError, whether or not anything imported `json`."""

import os
import subprocess
import sys

import pytest

from berth import fastjson

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
TORN = ['{"LowerDir": "/var/li', '{"a": 1', "[1,", '"abc', "{", ""]


def test_round_trip():
    value = {"a": [1, 2.5, None, True], "b": {"c": "d\u00e9"}}
    assert fastjson.loads(fastjson.dumps(value)) == value
    assert fastjson.dumps({"a": 1}) == '{"a":1}'


@pytest.mark.parametrize("text", TORN)
def test_torn_input_is_a_value_error(text):
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_torn_input_is_a_value_error_where_json_was_never_imported():
    """The CLI's own situation: CPython's _json finds json.decoder's error type only in
    sys.modules, and without it raised SystemError for an unterminated string or object."""
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from berth import fastjson\n"
              "assert 'json' not in sys.modules\n"
              "for text in sys.argv[2:]:\n"
              "    try:\n"
              "        fastjson.loads(text)\n"
              "    except ValueError:\n"
              "        print('ValueError')\n")
    result = subprocess.run([sys.executable, "-I", "-S", "-c", script, SRC, *TORN], capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["ValueError"] * len(TORN)


def test_indented_output_is_the_stdlibs_without_importing_json():
    import json as stdlib

    for value in ({"a": 1, "b": {"c": [1, 2, {"d": None}], "e": {}}, "f": [], "g": 'é"x', "h": 1.5, "i": True},
                  [], {}, "x", [{"a": []}], {2: 2, True: 3, None: 4}):
        for indent in (2, 4):
            assert fastjson.dumps(value, indent=indent) == stdlib.dumps(value, indent=indent, ensure_ascii=False)


def test_indent_with_a_string_as_the_stdlib():
    """docker's config.json is indented with a tab (image.credentials)."""
    import json

    value = {"auths": {"127.0.0.1:5000": {"auth": "eA=="}}, "list": [1, "é", {}], "empty": []}
    assert fastjson.dumps(value, indent="\t") == json.dumps(value, indent="\t", ensure_ascii=False)
