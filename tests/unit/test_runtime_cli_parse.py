"""berth-runtime's command line as go-runc, conmon and people write it (Go's flag package rules),
and what it makes of the parts that need no kernel: resources from update's flags, exec's process
from its flags, the systemd cgroup path, runc's version text."""

import os

import pytest

from berth.errors import InvalidArgument
from berth.runtime.cli import ALIASES, COMMANDS, parse_flags, parse_globals, validate_id, version_text


def test_go_flag_forms_and_the_first_non_flag_ends_them():
    flags, rest = parse_flags(["--bundle", "/b", "-pid-file=/p", "--no-pivot", "id", "--not-a-flag"],
                              COMMANDS["create"], ALIASES)
    assert flags == {"bundle": "/b", "pid-file": "/p", "no-pivot": True}
    assert rest == ["id", "--not-a-flag"]


def test_aliases_repeatable_lists_and_double_dash():
    flags, rest = parse_flags(["-d", "-e", "A=1", "--env=B=2", "-t", "--", "id", "sh"], COMMANDS["exec"], ALIASES)
    assert flags == {"detach": True, "env": ["A=1", "B=2"], "tty": True}
    assert rest == ["id", "sh"]


def test_ints_and_bools_with_values():
    flags, _ = parse_flags(["--preserve-fds", "2", "--no-new-keyring=false", "x"], COMMANDS["create"], ALIASES)
    assert flags == {"preserve-fds": 2, "no-new-keyring": False}
    with pytest.raises(InvalidArgument, match="parse error"):
        parse_flags(["--preserve-fds", "two", "x"], COMMANDS["create"], ALIASES)


def test_unknown_and_valueless_flags_are_refused():
    with pytest.raises(InvalidArgument, match="flag provided but not defined: -nope"):
        parse_flags(["--nope", "x"], COMMANDS["start"], ALIASES)
    with pytest.raises(InvalidArgument, match="flag needs an argument: -bundle"):
        parse_flags(["--bundle"], COMMANDS["create"], ALIASES)


def test_globals_as_containerd_passes_them():
    options, _, rest = parse_globals(["--root", "/run/r", "--log", "/b/log.json", "--log-format", "json",
                                      "--systemd-cgroup", "create", "--bundle", "/b", "id"])
    assert (options.root, options.log, options.log_format, options.systemd_cgroup) == \
        ("/run/r", "/b/log.json", "json", True)
    assert rest == ["create", "--bundle", "/b", "id"]
    with pytest.raises(InvalidArgument, match="invalid log-format"):
        parse_globals(["--log-format", "xml", "state", "x"])


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a b", "é"])
def test_ids_that_name_no_plain_directory_are_refused(bad):
    with pytest.raises(InvalidArgument, match="invalid id format"):
        validate_id(bad)


def test_version_text_has_runcs_three_lines():
    first, commit, spec = version_text().splitlines()
    assert first.startswith("berth-runtime version ") and commit.startswith("commit: ")
    assert spec.startswith("spec: 1.")


def test_update_flags_become_linux_resources():
    from berth.runtime.cli_cgroup import resources_of

    flags, _ = parse_flags(["--memory", "64m", "--memory-swap", "-1", "--cpu-shares", "512", "--pids-limit", "9",
                            "--cpuset-cpus", "0", "x"], COMMANDS["update"], ALIASES)
    assert resources_of(flags) == {"memory": {"limit": 64 << 20, "swap": -1}, "cpu": {"shares": 512, "cpus": "0"},
                                   "pids": {"limit": 9}}


def test_exec_flags_change_the_containers_process():
    from berth.runtime.cli_exec import process_of
    from berth.runtime.cli_lifecycle import Container

    container = Container("/nonexistent", "c", {"process": {
        "args": ["sleep", "1"], "env": ["PATH=/bin"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}}})
    flags, rest = parse_flags(["-e", "X=1", "--cwd", "/tmp", "-u", "5:6", "--cap", "CAP_NET_ADMIN", "-t", "c", "sh"],
                              COMMANDS["exec"], ALIASES)
    process = process_of(container, flags, rest[1:])
    assert process["args"] == ["sh"] and process["env"] == ["PATH=/bin", "X=1"] and process["cwd"] == "/tmp"
    assert process["user"] == {"uid": 5, "gid": 6} and process["terminal"] is True
    assert process["capabilities"]["effective"] == ["CAP_KILL", "CAP_NET_ADMIN"]
    assert container.state["process"]["args"] == ["sleep", "1"]  # the record is not changed


@pytest.mark.parametrize("verb, imports_os", [("start", False), ("delete", True)])
def test_start_and_delete_set_berths_umask_without_berth_fs(tmp_path, verb, imports_os):
    """`start` and `delete` are on every container's path: they set berth.fs's umask through
    posix and load no berth.fs; start not even `os` (~1.5 ms of its cost; delete's cgroups need it)."""
    import subprocess
    import sys

    from berth import fs
    from berth.runtime import cli

    assert cli.START_UMASK == fs.PROCESS_UMASK
    src = os.path.dirname(os.path.dirname(fs.__file__))
    probe = ("import sys; sys.path.insert(0, %r); sys.argv = ['berth-runtime', '--root', %r, %r, 'nothing']\n"
             "import berth\n"
             "def report(code, exit_now=berth.exit_now):  # what the verb left, as it exits\n"
             "    import posix; print(code, 'os' in sys.modules, 'berth.fs' in sys.modules, oct(posix.umask(0)))\n"
             "    exit_now(code)\n"
             "berth.exit_now = report\n"
             "from berth.runtime.cli import entry\n"
             "entry()")
    result = subprocess.run([sys.executable, "-IS", "-c", probe % (src, str(tmp_path), verb)], capture_output=True,
                            text=True, timeout=30)
    assert result.stdout.split() == ["1", str(imports_os), "False", oct(fs.PROCESS_UMASK)], result.stderr
    assert "container does not exist: nothing" in result.stderr
