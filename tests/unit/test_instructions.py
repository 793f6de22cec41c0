"""`import -c` / `commit -c` changes behave like moby's BuildFromConfig."""

import pytest

from berth.image.instructions import SUPPORTED, apply_changes


def base_config():
    return {
        "Env": ["PATH=/usr/local/bin:/usr/bin", "HOME=/root"],
        "Cmd": ["sh"],
        "Entrypoint": None,
        "WorkingDir": "/srv",
    }


def apply(*changes, config=None):
    return apply_changes(base_config() if config is None else config, list(changes))


def error_of(*changes, config=None):
    with pytest.raises(ValueError) as exc:
        apply(*changes, config=config)
    return str(exc.value)


def test_supported_instructions():
    assert set(SUPPORTED) >= {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER",
                              "VOLUME", "WORKDIR", "STOPSIGNAL", "HEALTHCHECK"}


def test_no_changes_returns_an_equal_copy():
    config = base_config()
    result = apply_changes(config, [])
    assert result == config
    assert result is not config


def test_input_config_is_not_modified():
    config = base_config()
    apply_changes(config, ["ENV A=1", "CMD x"])
    assert config == base_config()


# --- CMD and ENTRYPOINT ---------------------------------------------------

def test_cmd_exec_form():
    assert apply('CMD ["a","b"]')["Cmd"] == ["a", "b"]


def test_cmd_shell_form():
    assert apply("CMD a  b")["Cmd"] == ["/bin/sh", "-c", "a  b"]


def test_cmd_shell_form_uses_the_image_shell():
    config = dict(base_config(), Shell=["/bin/bash", "-xc"])
    assert apply("CMD a", config=config)["Cmd"] == ["/bin/bash", "-xc", "a"]


def test_cmd_without_arguments_is_the_bare_shell():
    # moby does not refuse an empty CMD: its shell form is just the shell.
    assert apply("CMD")["Cmd"] == ["/bin/sh", "-c"]


def test_cmd_empty_json_array():
    assert apply("CMD []")["Cmd"] == []


def test_cmd_malformed_json_falls_back_to_shell_form():
    assert apply('CMD ["a"')["Cmd"] == ["/bin/sh", "-c", '["a"']


def test_cmd_json_array_must_hold_strings():
    assert error_of('CMD ["a", 1]') == (
        "when using JSON array syntax, arrays must be comprised of strings only")


def test_entrypoint_resets_cmd():
    result = apply('ENTRYPOINT ["x"]')
    assert result["Entrypoint"] == ["x"]
    assert result["Cmd"] is None


def test_entrypoint_shell_form():
    assert apply("ENTRYPOINT exec x")["Entrypoint"] == ["/bin/sh", "-c", "exec x"]


def test_entrypoint_keeps_a_cmd_set_earlier_in_the_same_changes():
    result = apply('CMD ["y"]', 'ENTRYPOINT ["x"]')
    assert (result["Entrypoint"], result["Cmd"]) == (["x"], ["y"])


def test_cmd_after_entrypoint():
    result = apply('ENTRYPOINT ["x"]', 'CMD ["y"]')
    assert (result["Entrypoint"], result["Cmd"]) == (["x"], ["y"])


def test_empty_cmd_does_not_protect_cmd_from_entrypoint():
    assert apply("CMD []", 'ENTRYPOINT ["x"]')["Cmd"] is None


def test_empty_entrypoint_removes_it():
    config = dict(base_config(), Entrypoint=["old"])
    assert apply("ENTRYPOINT", config=config)["Entrypoint"] is None
    assert apply("ENTRYPOINT []", config=config)["Entrypoint"] is None


def test_cmd_and_entrypoint_are_not_expanded():
    assert apply("CMD echo $HOME")["Cmd"] == ["/bin/sh", "-c", "echo $HOME"]


def test_args_escaped_is_dropped():
    config = dict(base_config(), ArgsEscaped=True)
    assert "ArgsEscaped" not in apply('CMD ["x"]', config=config)


# --- ENV --------------------------------------------------------------------

def test_env_key_value_pairs_with_quotes():
    env = apply('ENV K=V K2="v 2" K3=\'single $HOME\' K4=a\\ b')["Env"]
    assert env[2:] == ["K=V", "K2=v 2", "K3=single $HOME", "K4=a b"]


def test_env_legacy_form_keeps_spaces():
    assert apply("ENV K V with  spaces")["Env"][-1] == "K=V with  spaces"


def test_env_replaces_an_existing_variable_in_place():
    assert apply("ENV HOME=/home/u")["Env"] == ["PATH=/usr/local/bin:/usr/bin", "HOME=/home/u"]


def test_env_expands_variables():
    env = apply("ENV A=$HOME/x B=${HOME}y C=\\$HOME D=\"$HOME\" E='$HOME'")["Env"]
    assert env[2:] == ["A=/root/x", "B=/rooty", "C=$HOME", "D=/root", "E=$HOME"]


def test_env_expands_against_the_env_before_the_instruction():
    env = apply("ENV A=1 B=$A", "ENV C=$A")["Env"]
    assert env[2:] == ["A=1", "B=", "C=1"]


def test_env_expansion_modifiers():
    env = apply("ENV A=${NOPE:-def} B=${HOME:+set} C=${NOPE:+set} D=${NOPE-x} "
                "E=${HOME#/r} F=${PATH%:*} G=${PATH##*/} H=${PATH/usr/opt} "
                "I=${PATH//usr/opt}")["Env"]
    assert env[2:] == ["A=def", "B=set", "C=", "D=x", "E=oot", "F=/usr/local/bin",
                       "G=bin", "H=/opt/local/bin:/usr/bin", "I=/opt/local/bin:/opt/bin"]


def test_env_required_variable():
    assert error_of('ENV A="${NOPE:?must be set}"') == (
        'failed to process "\\"${NOPE:?must be set}\\"": NOPE: must be set')


def test_env_expands_keys_too():
    config = dict(base_config(), Env=["NAME=X"])
    assert apply("ENV ${NAME}Y=1", config=config)["Env"] == ["NAME=X", "XY=1"]


def test_env_line_continuation():
    assert apply("ENV A=1 \\\n    B=2")["Env"][2:] == ["A=1", "B=2"]


def test_env_on_a_config_without_env():
    assert apply("ENV A=1", config={})["Env"] == ["A=1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("ENV", "ENV requires at least one argument"),
        ("ENV K", "ENV must have two arguments"),
        ("ENV =x", "ENV names can not be blank"),
        ("ENV a=b c", 'Syntax error - can\'t find = in "c". Must be of the form: name=value'),
        ('ENV A="open', 'failed to process "\\"open": '
                       "unexpected end of statement while looking for matching double-quote"),
        ("ENV A=${HOME", "failed to process \"${HOME\": syntax error: missing '}'"),
        ("ENV A=${:x}", "failed to process \"${:x}\": syntax error: bad substitution"),
        ("ENV A=${HOME:=x}", 'failed to process "${HOME:=x}": '
                             "unsupported modifier (:=) in substitution"),
        ("ENV --x=1 A=1", "unknown flag: --x"),
    ],
)
def test_env_errors(change, message):
    assert error_of(change) == message


# --- LABEL ------------------------------------------------------------------

def test_label_forms():
    labels = apply('LABEL k=v "k 2"="v 2"', "LABEL legacy some value", "LABEL home=$HOME")["Labels"]
    assert labels == {"k": "v", "k 2": "v 2", "legacy": "some value", "home": "/root"}


def test_label_adds_to_existing_labels():
    config = dict(base_config(), Labels={"a": "1", "b": "2"})
    assert apply("LABEL b=3", config=config)["Labels"] == {"a": "1", "b": "3"}


def test_label_errors():
    assert error_of("LABEL") == "LABEL requires at least one argument"
    assert error_of("LABEL onlykey") == "LABEL must have two arguments"
    assert error_of("LABEL =x") == "LABEL names can not be blank"


# --- EXPOSE -----------------------------------------------------------------

def test_expose_ports_protocols_and_ranges():
    ports = apply("EXPOSE 80 443/tcp 53/udp 8000-8002 81/TCP 9/sctp")["ExposedPorts"]
    assert ports == {"80/tcp": {}, "443/tcp": {}, "53/udp": {}, "8000/tcp": {},
                     "8001/tcp": {}, "8002/tcp": {}, "81/tcp": {}, "9/sctp": {}}


def test_expose_merges_with_existing_ports():
    config = dict(base_config(), ExposedPorts={"22/tcp": {}})
    assert apply("EXPOSE 80", config=config)["ExposedPorts"] == {"22/tcp": {}, "80/tcp": {}}


def test_expose_expands_and_splits_variables():
    config = {"Env": ["P=80 90/udp"]}
    assert apply("EXPOSE $P", config=config)["ExposedPorts"] == {"80/tcp": {}, "90/udp": {}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("EXPOSE 80/foo", "invalid proto: foo"),
        ("EXPOSE 70000", "invalid containerPort: 70000"),
        ("EXPOSE abc", "invalid containerPort: abc"),
        ("EXPOSE 90-80", "invalid containerPort: 90-80"),
        ("EXPOSE /tcp", "no port specified: /tcp<empty>"),
    ],
)
def test_expose_errors(change, message):
    assert error_of(change) == message


# --- USER, WORKDIR, VOLUME, STOPSIGNAL, ONBUILD, HEALTHCHECK ----------------------

def test_user():
    assert apply("USER u:g")["User"] == "u:g"
    assert apply("user 1000")["User"] == "1000"
    assert apply("USER $HOME")["User"] == "/root"


def test_user_takes_exactly_one_argument():
    assert error_of("USER") == "USER requires exactly one argument"


def test_workdir():
    assert apply("WORKDIR /abs//p/")["WorkingDir"] == "/abs/p"
    assert apply("WORKDIR rel")["WorkingDir"] == "/srv/rel"
    assert apply("WORKDIR rel", "WORKDIR ../x/./y")["WorkingDir"] == "/srv/x/y"
    assert apply("WORKDIR rel", config={})["WorkingDir"] == "/rel"
    assert apply("WORKDIR $HOME/w")["WorkingDir"] == "/root/w"


def test_workdir_errors():
    assert error_of("WORKDIR") == "WORKDIR requires exactly one argument"
    assert error_of("WORKDIR $NOPE") == "cannot normalize nothing"


def test_volume_forms():
    volumes = apply('VOLUME ["/a","/b"]', "VOLUME /c  /d", "VOLUME $HOME")["Volumes"]
    assert volumes == {"/a": {}, "/b": {}, "/c": {}, "/d": {}, "/root": {}}


def test_volume_errors():
    assert error_of("VOLUME") == "VOLUME requires at least one argument"
    assert error_of("VOLUME []") == "VOLUME requires at least one argument"
    assert error_of('VOLUME ["/a", " "]') == "VOLUME specified can not be an empty string"


@pytest.mark.parametrize("signal", ["SIGTERM", "sigkill", "TERM", "9", "SIGRTMIN+3", "RTMAX-1"])
def test_stopsignal(signal):
    assert apply(f"STOPSIGNAL {signal}")["StopSignal"] == signal


def test_stopsignal_errors():
    assert error_of("STOPSIGNAL SIGFOO") == "invalid signal: SIGFOO"
    assert error_of("STOPSIGNAL 0") == "invalid signal: 0"
    assert error_of("STOPSIGNAL") == "STOPSIGNAL requires exactly one argument"


def test_onbuild_keeps_the_raw_instruction():
    result = apply("ONBUILD RUN echo $HOME", "onbuild  COPY . /x")
    assert result["OnBuild"] == ["RUN echo $HOME", "COPY . /x"]


def test_onbuild_errors():
    assert error_of("ONBUILD") == "ONBUILD requires at least one argument"
    assert error_of("ONBUILD ONBUILD RUN x") == (
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    assert error_of("ONBUILD FROM x") == "FROM isn't allowed as an ONBUILD trigger"
    assert error_of("ONBUILD maintainer x") == "MAINTAINER isn't allowed as an ONBUILD trigger"


def test_healthcheck_shell_form_with_options():
    health = apply("HEALTHCHECK --interval=5s --timeout=1m --start-period=1.5s "
                   "--start-interval=100ms --retries=3 CMD curl -f http://x/")["Healthcheck"]
    assert health == {
        "Test": ["CMD-SHELL", "curl -f http://x/"],
        "Interval": 5 * 10**9,
        "Timeout": 60 * 10**9,
        "StartPeriod": 1_500_000_000,
        "StartInterval": 100_000_000,
        "Retries": 3,
    }


def test_healthcheck_exec_form_and_none():
    assert apply('HEALTHCHECK CMD ["curl","x"]')["Healthcheck"] == {"Test": ["CMD", "curl", "x"]}
    assert apply("HEALTHCHECK none")["Healthcheck"] == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=5 CMD x", 'time: missing unit in duration "5"'),
        ("HEALTHCHECK --interval=10us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("HEALTHCHECK --foo=1 CMD x", "unknown flag: --foo"),
        ("HEALTHCHECK --interval CMD x", "missing a value on flag: --interval"),
        ("HEALTHCHECK --retries=1 --retries=2 CMD x", "duplicate flag specified: --retries"),
    ],
)
def test_healthcheck_errors(change, message):
    assert error_of(change) == message


# --- the change list as a whole ------------------------------------------------------------

def test_changes_apply_in_order():
    result = apply("USER a", "USER b", "ENV X=1", "ENV X=2")
    assert result["User"] == "b"
    assert result["Env"][-1] == "X=2"


def test_instruction_names_are_case_insensitive():
    assert apply("cmd x")["Cmd"] == ["/bin/sh", "-c", "x"]
    assert apply("Env A=1")["Env"][-1] == "A=1"


def test_comments_and_blank_lines_are_ignored():
    assert apply("# a comment", "", "USER x")["User"] == "x"


@pytest.mark.parametrize("instruction", ["FROM", "RUN", "COPY", "ADD", "ARG", "SHELL",
                                         "MAINTAINER"])
def test_build_only_instructions_are_refused(instruction):
    assert error_of(f"{instruction} x y") == f"{instruction} is not a valid change command"


def test_unknown_instruction_keeps_its_spelling():
    assert error_of("foo bar") == "foo is not a valid change command"


def test_no_instructions():
    assert error_of("") == "file with no instructions"
    assert error_of("# only a comment") == "file with no instructions"


def test_parse_errors_win_over_invalid_instructions():
    # moby parses every line before it checks any instruction.
    assert error_of("FROM x", "ENV K") == "ENV must have two arguments"


def test_nothing_is_applied_when_a_later_instruction_is_invalid():
    assert error_of("USER a", "RUN x") == "RUN is not a valid change command"


def test_unknown_flags_are_refused():
    assert error_of("CMD --foo x") == "unknown flag: --foo"
    assert error_of("USER --foo=1 x") == "unknown flag: --foo"
