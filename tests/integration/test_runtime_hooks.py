"""OCI hooks in `berth-runtime` (runtime-spec config.md, "POSIX-platform Hooks"): every kind
runs at its place in the lifecycle, in its namespace, with its args and env and the container's
state JSON on stdin; a timeout kills the hook; a failing create-time hook fails `create` and
leaves nothing behind; poststart and poststop failures are warnings. Without hooks, nothing of
this is imported."""

import json
import os
import subprocess

import pytest
from test_runtime_cli import base_config, runtime  # noqa: F401 (runtime is a fixture)

from conftest import berth_binary, cgroup_dirs, mounts_under, refused, runtime_binary, wait_for

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")

# Records what a hook saw: its arguments, stdin (the state), its mount and pid namespaces, an
# environment variable; appends its kind to `order`. $1 is the kind, $2 the directory to write in.
RECORDER = """#!/bin/sh
kind=$1
out=$2
echo "$kind" >> "$out/order"
printf '%s\\n' "$@" > "$out/$kind.args"
cat > "$out/$kind.state"
readlink /proc/self/ns/mnt > "$out/$kind.mnt"
readlink /proc/self/ns/pid > "$out/$kind.pidns"
echo "${GREETING-unset}" > "$out/$kind.env"
"""


@pytest.fixture
def hooked(runtime, tmp_path):  # noqa: F811
    """A bundle whose hooks record themselves into `out` (on the host, and bound at /out in the
    container for startContainer, whose path resolves in the container)."""
    out = tmp_path / "out"
    out.mkdir()
    host_script = tmp_path / "record.sh"
    host_script.write_text(RECORDER)
    host_script.chmod(0o755)
    rootfs = os.path.join(runtime.bundle, "rootfs")
    with open(os.path.join(rootfs, "record.sh"), "w") as f:
        f.write(RECORDER)
    os.chmod(os.path.join(rootfs, "record.sh"), 0o755)
    runtime.out = str(out)
    runtime.host_script = str(host_script)
    return runtime


def _hook(path: str, kind: str, out: str, **extra) -> dict:
    return {"path": path, "args": ["record", kind, out], **extra}


def _config(rt, container_id: str, hooks: dict, *args: str) -> dict:
    config = base_config(container_id, *(args or ("true",)))
    config["mounts"].append({"destination": "/out", "type": "bind", "source": rt.out, "options": ["rbind"]})
    config["hooks"] = hooks
    config["annotations"] = {"org.example.hooks": "yes"}
    rt.write_config(config)
    return config


def _read(rt, name: str) -> str:
    with open(os.path.join(rt.out, name)) as f:
        return f.read()


def _state(rt, kind: str) -> dict:
    return json.loads(_read(rt, f"{kind}.state"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def _left_nothing(rt, container_id: str, pid: int | None = None) -> None:
    assert not os.path.exists(os.path.join(rt.state_root, container_id))
    assert cgroup_dirs(container_id) == []
    assert mounts_under(os.path.join(rt.bundle, "rootfs")) == []
    if pid:
        assert wait_for(lambda: not _alive(pid), what=f"container pid {pid} to be gone")


def test_every_hook_kind_runs_in_order_in_its_namespace_with_the_state(hooked):
    rt = hooked
    container_id = rt.new_id()
    hooks = {kind: [_hook("/record.sh" if kind == "startContainer" else rt.host_script, kind,
                          "/out" if kind == "startContainer" else rt.out, env=["GREETING=hello"])]
             for kind in KINDS}
    hooks["createRuntime"][0].pop("env")  # no env: the runtime's own environment (runc's)
    _config(rt, container_id, hooks, "sleep", "30")

    result, _ = rt.create(container_id)
    assert result.returncode == 0, result.stderr
    assert _read(rt, "order").split() == ["prestart", "createRuntime", "createContainer"]
    host_pid = rt.state(container_id)["pid"]
    host_mnt = os.readlink("/proc/self/ns/mnt")
    container_mnt = os.readlink(f"/proc/{host_pid}/ns/mnt")
    container_pidns = os.readlink(f"/proc/{host_pid}/ns/pid")

    result = rt("start", container_id)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: _read(rt, "order").split()[-1:] == ["poststart"], what="the poststart hook")
    result = rt("delete", "-f", container_id)
    assert result.returncode == 0, result.stderr
    assert _read(rt, "order").split() == list(KINDS)

    for kind in KINDS:
        out = "/out" if kind == "startContainer" else rt.out
        assert _read(rt, f"{kind}.args").split("\n")[:-1] == [kind, out]
        state = _state(rt, kind)
        assert state["id"] == container_id and state["bundle"] == rt.bundle
        assert state["ociVersion"] == "1.0.2" and state["annotations"] == {"org.example.hooks": "yes"}
    # runtime namespace: the pid as the runtime sees it; container namespace: as the container does
    assert {kind: (_state(rt, kind)["status"], _state(rt, kind)["pid"]) for kind in KINDS} == {
        "prestart": ("creating", host_pid), "createRuntime": ("creating", host_pid),
        "createContainer": ("creating", 1), "startContainer": ("created", 1),
        "poststart": ("running", host_pid), "poststop": ("stopped", 0),
    }
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert _read(rt, f"{kind}.mnt").strip() == host_mnt, kind
    for kind in ("createContainer", "startContainer"):
        assert _read(rt, f"{kind}.mnt").strip() == container_mnt, kind
        assert _read(rt, f"{kind}.pidns").strip() == container_pidns, kind
    assert _read(rt, "createContainer.env") == "hello\n"
    assert _read(rt, "createRuntime.env") == "unset\n"


def test_start_container_hook_gets_the_container_environment(hooked):
    rt = hooked
    container_id = rt.new_id()
    config = _config(rt, container_id, {"startContainer": [_hook("/record.sh", "startContainer", "/out")]})
    config["process"]["env"].append("GREETING=from-the-container")
    rt.write_config(config)
    result = rt("run", "-b", rt.bundle, container_id)
    assert result.returncode == 0, result.stderr
    assert _read(rt, "startContainer.env") == "from-the-container\n"


def test_timeout_kills_the_hook_and_fails_create(hooked, tmp_path):
    rt = hooked
    container_id = rt.new_id()
    slow = tmp_path / "slow.sh"
    slow.write_text(f"#!/bin/sh\necho $$ > {tmp_path}/slow.pid\nexec sleep 60\n")
    slow.chmod(0o755)
    _config(rt, container_id, {"createRuntime": [{"path": str(slow), "timeout": 1}]})
    result, _ = rt.create(container_id)
    refused(result, 1, "error running createRuntime hook #0: hook ran past specified timeout of 1.0s")
    hook_pid = int((tmp_path / "slow.pid").read_text())
    assert not _alive(hook_pid)
    _left_nothing(rt, container_id)


def test_failing_create_runtime_hook_fails_create_and_leaves_nothing(hooked, tmp_path):
    rt = hooked
    container_id = rt.new_id()
    failing = tmp_path / "fail.sh"
    failing.write_text(f"#!/bin/sh\ncat > {tmp_path}/fail.state\necho no network for you >&2\nexit 3\n")
    failing.chmod(0o755)
    _config(rt, container_id, {"createRuntime": [{"path": str(failing)}],
                               "poststop": [_hook(rt.host_script, "poststop", rt.out)]})
    result, _ = rt.create(container_id)
    err = refused(result, 1, ("error running createRuntime hook #0: exit status 3", "no network for you"))
    assert len(err.strip().splitlines()) == 1, err
    container_pid = json.loads((tmp_path / "fail.state").read_text())["pid"]
    _left_nothing(rt, container_id, container_pid)
    assert _state(rt, "poststop")["status"] == "stopped"  # the lifecycle's step 13 after a failed create
    assert rt("state", container_id).returncode == 1


def test_failing_create_container_hook_fails_create_and_leaves_nothing(hooked, tmp_path):
    rt = hooked
    container_id = rt.new_id()
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\nexit 4\n")
    failing.chmod(0o755)
    _config(rt, container_id, {"prestart": [_hook(rt.host_script, "prestart", rt.out)],
                               "createContainer": [{"path": str(failing)}]})
    result, _ = rt.create(container_id)
    refused(result, 1, "error running createContainer hook #0: exit status 4")
    _left_nothing(rt, container_id, _state(rt, "prestart")["pid"])


def test_failing_start_container_hook_fails_start(hooked):
    rt = hooked
    container_id = rt.new_id()
    with open(os.path.join(rt.bundle, "rootfs", "fail.sh"), "w") as f:
        f.write("#!/bin/sh\necho not today >&2\nexit 5\n")
    os.chmod(os.path.join(rt.bundle, "rootfs", "fail.sh"), 0o755)
    _config(rt, container_id, {"startContainer": [{"path": "/fail.sh"}],
                               "poststart": [_hook(rt.host_script, "poststart", rt.out)]},
            "sh", "-c", "echo ran > /out/ran")
    result, _ = rt.create(container_id)
    assert result.returncode == 0, result.stderr
    result = rt("start", container_id)
    refused(result, 1, ("error running startContainer hook #0: exit status 5", "not today"))
    assert rt.wait_for(container_id, "stopped")["status"] == "stopped"
    assert not os.path.exists(os.path.join(rt.out, "ran"))  # the process never ran
    assert not os.path.exists(os.path.join(rt.out, "order"))  # nor poststart
    assert rt("delete", container_id).returncode == 0
    _left_nothing(rt, container_id)


def test_run_with_a_failing_start_container_hook_cleans_up(hooked):
    rt = hooked
    container_id = rt.new_id()
    _config(rt, container_id, {"startContainer": [{"path": "/no/such/hook"}]})
    result = rt("run", "-b", rt.bundle, container_id)
    refused(result, 1, ("error running startContainer hook #0: exit status 127", "no/such/hook"))
    _left_nothing(rt, container_id)


def test_poststart_and_poststop_failures_are_warnings(hooked):
    rt = hooked
    container_id = rt.new_id()
    _config(rt, container_id, {"poststart": [{"path": "/bin/false"}], "poststop": [{"path": "/bin/false"}]},
            "sleep", "30")
    result, _ = rt.create(container_id)
    assert result.returncode == 0, result.stderr
    result = rt("start", container_id)
    assert result.returncode == 0
    assert result.stderr == ("berth-runtime: warning: error running poststart hook #0: exit status 1, "
                             "stdout: , stderr: \n")
    assert rt.state(container_id)["status"] == "running"
    result = rt("delete", "-f", container_id)
    assert result.returncode == 0
    assert "warning: error running poststop hook #0: exit status 1" in result.stderr
    _left_nothing(rt, container_id)


def test_hooks_run_as_config_json_was_at_create(hooked):
    """poststart and poststop come from state.json: config.json changed after create changes nothing."""
    rt = hooked
    container_id = rt.new_id()
    config = _config(rt, container_id, {"poststop": [_hook(rt.host_script, "poststop", rt.out)]})
    assert rt.create(container_id)[0].returncode == 0
    config["hooks"] = {}
    rt.write_config(config)
    assert rt("delete", "-f", container_id).returncode == 0
    assert _read(rt, "order") == "poststop\n"


@pytest.mark.parametrize("hook, message", [
    ({"path": "relative/hook"}, "path 'relative/hook' must be absolute"),
    ({"path": "/bin/true", "timeout": 0}, "timeout must be greater than zero"),
    ({"args": ["x"]}, "path is required"),
])
def test_invalid_hooks_are_refused_before_anything_is_made(runtime, hook, message):  # noqa: F811
    container_id = runtime.new_id()
    config = base_config(container_id)
    config["hooks"] = {"createRuntime": [hook]}
    runtime.write_config(config)
    result, _ = runtime.create(container_id)
    refused(result, 1, message)
    assert not os.path.exists(os.path.join(runtime.state_root, container_id))


def test_unknown_hook_kind_is_refused_not_ignored(runtime):  # noqa: F811
    container_id = runtime.new_id()
    config = base_config(container_id)
    config["hooks"] = {"prestop": [{"path": "/bin/true"}]}
    runtime.write_config(config)
    result, _ = runtime.create(container_id)
    refused(result, 1, "unsupported hook 'prestop'")


def _imports(launcher: str, *args: str) -> set[str]:
    """The modules a berth launcher (a Python script) imports: its interpreter's -X importtime report."""
    with open(launcher) as f:
        interpreter = f.readline().removeprefix("#!").split()
    result = subprocess.run([interpreter[0], "-X", "importtime", *interpreter[1:], launcher, *args],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 0, result.stderr
    return {line.rpartition("|")[2].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_no_hooks_costs_no_imports(busybox, runtime):  # noqa: F811
    """`berth run` (the engine sets no hooks) and a bundle without hooks import neither the
    hook runner nor subprocess."""
    ran = _imports(berth_binary(), *busybox.cmd("run", "--rm", "busybox", "true")[1:])
    assert "berth.runtime.container" in ran
    assert not {"berth.runtime.hooks", "subprocess"} & ran
    container_id = runtime.new_id()
    runtime.write_config(base_config(container_id))
    ran = _imports(runtime_binary(), "--root", runtime.state_root, "run", "-b", runtime.bundle, container_id)
    assert "berth.runtime.container" in ran
    assert not {"berth.runtime.hooks", "subprocess"} & ran
