"""The Dockerfile parser a build uses (berth.image.instructions.parse_dockerfile): parser
directives, the escape token, continuations, heredocs, and the line each instruction starts on."""

import pytest

from berth.image.instructions import LineError, State, parse_dockerfile


def test_directives_escape_and_line_numbers():
    parsed = parse_dockerfile("# syntax=docker/dockerfile:1\n# escape=`\n\nFROM busybox\n"
                              "RUN echo a `\n  b\n# a comment\nCOPY x y\n")
    assert parsed.escape == "`"
    assert [(n.name, n.line, n.args) for n in parsed.nodes] == [
        ("FROM", 4, ["busybox"]), ("RUN", 5, ["echo a   b"]), ("COPY", 8, ["x", "y"])]


def test_a_directive_after_an_instruction_is_a_comment():
    parsed = parse_dockerfile("FROM busybox\n# escape=`\nRUN echo \\\n  b\n")
    assert parsed.escape == "\\" and parsed.nodes[1].args == ["echo   b"]


@pytest.mark.parametrize("text, message, line", [
    ("# escape=x\nFROM a\n", "invalid escape token 'x' does not match ` or \\", 1),
    ("# escape=`\n# escape=\\\nFROM a\n", "only one escape parser directive can be used", 2),
    ("FROM a\nRUN <<EOF\necho\n", "unterminated heredoc", 2),
    ("FROM a\nCMD [\"a\", 1]\n", "when using JSON array syntax, arrays must be comprised of strings only", 2),
])
def test_errors_know_their_line(text, message, line):
    with pytest.raises(LineError) as caught:
        parse_dockerfile(text)
    assert str(caught.value) == message and caught.value.line == line


def test_heredocs():
    parsed = parse_dockerfile('FROM a\nRUN <<EOF\necho one\nEOF\nCOPY <<-"X" <<Y /d/\n\tkept $A\n\tX\ny\nY\nENV A=1\n')
    run, copy = parsed.nodes[1], parsed.nodes[2]
    assert [(h.name, h.expand, h.chomp, h.text()) for h in run.heredocs] == [("EOF", True, False, "echo one\n")]
    assert [(h.name, h.expand, h.chomp, h.text()) for h in copy.heredocs] == [
        ("X", False, True, "kept $A\n"), ("Y", True, False, "y\n")]
    assert parsed.nodes[3].name == "ENV" and parsed.nodes[3].line == 10


def test_arg_words_and_expansion_with_build_args():
    parsed = parse_dockerfile('FROM a\nARG A=1 B="two words" C\n')
    assert parsed.nodes[1].args == ["A=1", 'B="two words"', "C"]
    state = State({"Env": ["A=from-env"]}, {"A": "from-arg", "B": "b"})
    assert state.expand("${A}-${B}-${C:-none}") == "from-env-b-none"  # ENV wins over an ARG
