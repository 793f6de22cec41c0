"""Docker-style flag parsing (pflag semantics)."""

import pytest

from berth.cli.flags import BOOL, INT, LIST, STRING, Command, Flag, parse
from berth.errors import InvalidArgument

RUN = Command("run", "berth run [OPTIONS] IMAGE [COMMAND]", "", [
    Flag("interactive", "i", BOOL, False), Flag("tty", "t", BOOL, False), Flag("rm", None, BOOL, False),
    Flag("env", "e", LIST, ()), Flag("name", None, STRING, None), Flag("workdir", "w", STRING, None),
    Flag("last", "n", INT, -1),
], interspersed=False, min_args=1)
PS = Command("ps", "berth ps", "", [Flag("all", "a", BOOL, False), Flag("quiet", "q", BOOL, False)], max_args=0)


def test_grouped_short_bools_and_values():
    opts, args = parse(RUN, ["-it", "-e", "A=1", "-eB=2", "--env=C=3", "--name", "x", "busybox", "sh"])
    assert opts.interactive and opts.tty
    assert opts.env == ["A=1", "B=2", "C=3"]
    assert opts.name == "x"
    assert args == ["busybox", "sh"]


def test_flags_after_the_image_belong_to_the_command():
    opts, args = parse(RUN, ["busybox", "ls", "-la", "--rm"])
    assert args == ["busybox", "ls", "-la", "--rm"]
    assert not opts.rm


def test_bool_with_explicit_value():
    opts, _ = parse(RUN, ["--rm=false", "-i=true", "busybox"])
    assert opts.rm is False and opts.interactive is True
    assert opts.given("rm")


def test_double_dash_ends_flags():
    _, args = parse(RUN, ["--", "-image-like", "x"])
    assert args == ["-image-like", "x"]


@pytest.mark.parametrize("argv, message", [
    (["--bogus", "busybox"], "unknown flag: --bogus"),
    (["-x", "busybox"], "unknown shorthand flag: 'x' in -x"),
    (["--name"], "flag needs an argument: --name"),
    (["-e"], "flag needs an argument: 'e' in -e"),
    (["--rm=maybe", "busybox"], 'invalid argument "maybe" for "--rm" flag'),
    (["-n", "abc", "busybox"], 'invalid argument "abc" for "-n, --last" flag'),
])
def test_errors_use_dockers_wording(argv, message):
    with pytest.raises(InvalidArgument) as err:
        parse(RUN, argv)
    assert message in str(err.value)
    assert "See 'berth run --help'." in str(err.value)


def test_argument_counts_use_docker_28s_wording():
    with pytest.raises(InvalidArgument) as err:
        parse(RUN, [])
    assert str(err.value) == ("'berth run' requires at least 1 argument\n\nUsage:  " + RUN.usage +
                              "\n\nRun 'berth run --help' for more information")


def test_no_arguments_command():
    with pytest.raises(InvalidArgument, match="'berth ps' accepts no arguments"):
        parse(PS, ["extra"])
    opts, args = parse(PS, ["-aq"])
    assert opts.all and opts.quiet and args == []
