"""Every flag docker 28 documents for the commands berth has is known to berth's parser:
`berth <command> --help` lists it (with its short form, taking a value exactly when
docker's does), and passing it never gives "unknown flag". The flags are docker's own
`--help`, recorded in tests/data/docker-flags.txt by scripts/record-docker-flags.

What a flag does is tested where it works (test_run_ergonomics.py and the others); a flag
berth cannot honour yet must fail naming itself, never be ignored."""

import os
import re

import pytest

from conftest import REPO, private_berth

TABLE = os.path.join(REPO, "tests", "data", "docker-flags.txt")


def docker_flags() -> dict[str, list[tuple[str, str, str]]]:
    """command -> [(long, short or "", value type or "bool")], as recorded."""
    table: dict[str, list[tuple[str, str, str]]] = {}
    with open(TABLE, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            command, long, short, kind = line.rstrip("\n").split("\t")
            table.setdefault(command, []).append((long, "" if short == "-" else short, kind))
    return table


FLAGS = docker_flags()


def argv_with_every_flag(flags: list[tuple[str, str, str]]) -> list[str]:
    """Each flag given once by its long name and once by its short one, with a value where
    it takes one; --help last, so that the command only parses them."""
    argv = []
    for long, short, kind in flags:
        if long == "help":
            continue
        value = "1s" if kind == "duration" else "1"
        argv.append(f"--{long}" if kind == "bool" else f"--{long}={value}")
        if short:
            argv += [f"-{short}"] if kind == "bool" else [f"-{short}", value]
    return argv + ["--help"]


# "  -a, --attach list   Attach ..." / "      --rm   Automatically ..."
HELP_LINE = re.compile(r"^\s+(?:-(?P<short>\w), )?--(?P<long>[a-z0-9-]+)(?P<value> \S+)?(?:\s{2,}|$)")


def listed(help_text: str) -> dict[str, tuple[str, bool]]:
    """long -> (short or "", takes a value) from a command's --help."""
    found = {}
    for line in help_text.splitlines():
        m = HELP_LINE.match(line)
        if m:
            found[m["long"]] = (m["short"] or "", bool(m["value"]))
    return found


def test_the_table_covers_the_commands_of_the_issue():
    for command in ("run", "create", "exec", "ps", "images", "logs", "inspect", "rm", "rmi", "stop", "start",
                    "restart", "kill", "commit", "cp", "stats", "top", "update", "wait", "port", "tag", "history",
                    "save", "load", "import", "export", "system df", "system prune", "system info", "system events",
                    "container ls", "container prune", "image ls", "image prune", "volume create", "volume ls",
                    "volume prune", "network ls", "network inspect"):
        assert command in FLAGS, f"{command} is missing from {TABLE}: rerun scripts/record-docker-flags"
    assert len(FLAGS["run"]) >= 100  # docker 28's run has 104 (with those a dockerd 20.10 hides)


@pytest.fixture(scope="module")
def berth_root(busybox_tar):
    with private_berth(busybox_tar) as b:
        yield b


@pytest.mark.parametrize("command", sorted(FLAGS))
def test_berth_knows_every_flag_docker_documents(berth_root, command):
    flags = FLAGS[command]
    result = berth_root(*command.split(), *argv_with_every_flag(flags))
    assert "unknown flag" not in result.stderr and "unknown shorthand flag" not in result.stderr, result.stderr
    assert result.returncode == 0, f"berth {command} with every flag of docker's: {result.stderr}"
    help_flags = listed(result.stdout)
    problems = []
    for long, short, kind in flags:
        if long not in help_flags:
            problems.append(f"--{long} is not in `berth {command} --help`")
            continue
        berth_short, takes_value = help_flags[long]
        if short != berth_short:
            problems.append(f"--{long}: short form -{short or '(none)'} in docker, -{berth_short or '(none)'} here")
        if takes_value != (kind != "bool"):
            problems.append(f"--{long}: docker's takes {'no value' if kind == 'bool' else 'a ' + kind}, berth's "
                            f"{'a value' if takes_value else 'none'}")
    assert not problems, "\n".join(problems)


def test_a_flag_docker_lacks_is_still_unknown(berth_root):
    """The test above can fail: the parser does reject what it does not know."""
    result = berth_root("run", "--no-such-flag", "--help")
    assert result.returncode == 125 and "unknown flag: --no-such-flag" in result.stderr
