"""A --sysctl must never reach the host (issue 11, hole 5): runc's rule, a namespaced sysctl
only in a namespace of the container's own. `--ipc host`, `--network host` and container:<x>
of such a donor (directly or through another container) are refused at create with docker's
(runc's) words, by `berth run/create` and by `berth-runtime` on a bundle; a private namespace
still takes its sysctls. Each attack writes a value the host does not have, and the test checks
the host's value afterwards (restoring it whatever happens)."""

import os
import subprocess

import pytest
from test_runtime_cli import base_config, runtime  # noqa: F401 (runtime is a fixture)

IPC_KEY = "kernel.msgmax"
NET_KEY = "net.ipv4.tcp_keepalive_probes"  # harmless to the host, should the refusal fail


def _path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def _read(key: str) -> str:
    with open(_path(key)) as f:
        return f.read().strip()


@pytest.fixture
def host_values():
    """The host's values of the sysctls the attacks aim at, put back after the test; returns
    {key: (host value, a different value an attack would write)}."""
    saved = {key: _read(key) for key in (IPC_KEY, NET_KEY)}
    try:
        yield {key: (value, str(int(value) - 1)) for key, value in saved.items()}
    finally:
        for key, value in saved.items():
            if _read(key) != value:
                with open(_path(key), "w") as f:
                    f.write(value)


def _refused(busybox, args: list[str], message: str, verb: str = "run") -> None:
    extra = ["--rm"] if verb == "run" else []
    result = busybox(verb, *extra, *args, "busybox", "true")
    assert result.returncode == 125, (args, result.returncode, result.stderr)
    assert result.stderr == f"Error: {message}\n", (args, result.stderr)


def _donor(busybox, name: str, *args: str) -> str:
    return busybox.ok("run", "-d", "--name", name, *args, "busybox", "sleep", "600").strip()


def test_ipc_host_sysctl_is_refused(busybox, host_values):
    host, attack = host_values[IPC_KEY]
    for verb in ("run", "create"):
        _refused(busybox, ["--ipc", "host", "--network", "none", "--sysctl", f"{IPC_KEY}={attack}"],
                 f'sysctl "{IPC_KEY}" is not allowed in the hosts ipc namespace', verb)
    assert _read(IPC_KEY) == host
    assert busybox.container_ids() == []


def test_ipc_of_a_host_ipc_donor_is_refused(busybox, host_values):
    host, attack = host_values[IPC_KEY]
    _donor(busybox, "hostipc", "--ipc", "host", "--network", "none")
    for verb in ("run", "create"):
        _refused(busybox, ["--ipc", "container:hostipc", "--network", "none", "--sysctl", f"{IPC_KEY}={attack}"],
                 f'sysctl "{IPC_KEY}" is not allowed in the hosts ipc namespace', verb)
    assert _read(IPC_KEY) == host


def test_network_host_sysctl_is_refused(busybox, host_values):
    host, attack = host_values[NET_KEY]
    for verb in ("run", "create"):
        _refused(busybox, ["--network", "host", "--sysctl", "net.ipv4.ip_forward=1"],
                 'sysctl "net.ipv4.ip_forward" not allowed in host network namespace', verb)
        _refused(busybox, ["--network", "host", "--sysctl", f"{NET_KEY}={attack}"],
                 f'sysctl "{NET_KEY}" not allowed in host network namespace', verb)
    assert _read(NET_KEY) == host


def test_network_of_a_host_network_donor_is_refused_through_every_link(busybox, host_values):
    host, attack = host_values[NET_KEY]
    _donor(busybox, "hostnet", "--network", "host")
    _donor(busybox, "middle", "--network", "container:hostnet")  # joins the host's namespace too
    for donor in ("hostnet", "middle"):
        for verb in ("run", "create"):
            _refused(busybox, ["--network", f"container:{donor}", "--sysctl", f"{NET_KEY}={attack}"],
                     f'sysctl "{NET_KEY}" not allowed in host network namespace', verb)
    assert _read(NET_KEY) == host


def test_private_namespaces_still_take_their_sysctls(busybox, host_values):
    ipc_host, ipc_value = host_values[IPC_KEY]
    net_host, net_value = host_values[NET_KEY]
    out = busybox.ok("run", "--rm", "--network", "none", "--sysctl", f"{IPC_KEY}={ipc_value}",
                     "--sysctl", f"{NET_KEY}={net_value}", "--sysctl", "kernel.domainname=berth.test", "busybox",
                     "cat", _path(IPC_KEY), _path(NET_KEY), "/proc/sys/kernel/domainname")
    assert out.split() == [ipc_value, net_value, "berth.test"]
    # container:<x> of a donor with namespaces of its own: the donor's, not the host's
    _donor(busybox, "private", "--network", "none", "--ipc", "shareable")
    out = busybox.ok("run", "--rm", "--network", "container:private", "--ipc", "container:private",
                     "--sysctl", f"{IPC_KEY}={ipc_value}", "--sysctl", f"{NET_KEY}={net_value}", "busybox",
                     "cat", _path(IPC_KEY), _path(NET_KEY))
    assert out.split() == [ipc_value, net_value]
    assert busybox.ok("exec", "private", "cat", _path(NET_KEY)).strip() == net_value
    assert (_read(IPC_KEY), _read(NET_KEY)) == (ipc_host, net_host)


# -- berth-runtime: the same rule on a bundle's linux.namespaces -----------------------------

def _bundle_run(runtime, namespaces: list[dict], sysctls: dict) -> subprocess.CompletedProcess:  # noqa: F811
    container_id = runtime.new_id()
    config = base_config(container_id, "true")
    config["linux"]["namespaces"] = namespaces
    config["linux"]["sysctl"] = sysctls
    if not any(ns["type"] == "uts" for ns in namespaces):  # runc refuses a hostname without one, first
        del config["hostname"]
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert not os.path.exists(os.path.join(runtime.state_root, container_id))  # nothing made
    return result


def _without(kind: str, extra: dict | None = None) -> list[dict]:
    kinds = ("pid", "network", "ipc", "uts", "mount")
    return [{"type": t} for t in kinds if t != kind] + ([extra] if extra else [])


@pytest.fixture
def private_namespaces():
    """A process with a network and IPC namespace of its own (for a bundle to join)."""
    child = subprocess.Popen(["unshare", "--net", "--ipc", "sh", "-c", "echo ready; exec sleep 600"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"  # its namespaces exist now
        yield child.pid
    finally:
        child.kill()
        child.wait()


def test_runtime_refuses_host_namespace_sysctls(runtime, host_values):  # noqa: F811
    ipc_host, ipc_value = host_values[IPC_KEY]
    net_host, net_value = host_values[NET_KEY]
    me = os.getpid()  # a path to our own namespace is the host's too (runc's isHostNetNS)
    cases = [
        (_without("ipc"), {IPC_KEY: ipc_value}, f'sysctl "{IPC_KEY}" is not allowed in the hosts ipc namespace'),
        (_without("ipc", {"type": "ipc", "path": f"/proc/{me}/ns/ipc"}), {"fs.mqueue.msg_max": "11"},
         'sysctl "fs.mqueue.msg_max" is not allowed in the hosts ipc namespace'),
        (_without("network"), {NET_KEY: net_value}, f'sysctl "{NET_KEY}" not allowed in host network namespace'),
        (_without("network", {"type": "network", "path": f"/proc/{me}/ns/net"}), {"net.ipv4.ip_forward": "1"},
         'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
        (_without("network", {"type": "network", "path": f"/proc/{me}/ns/net"}),
         {NET_KEY.replace(".", "/"): net_value}, f'sysctl "{NET_KEY}" not allowed in host network namespace'),
        (_without("uts"), {"kernel.domainname": "x"}, 'sysctl "kernel.domainname" is not in a separate kernel '
         "namespace"),
        (_without("uts", {"type": "uts", "path": f"/proc/{me}/ns/uts"}), {"kernel.domainname": "x"},
         'sysctl "kernel.domainname" is not in a separate kernel namespace'),
        (_without(""), {"kernel.hostname": "x"},
         'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'),
        (_without(""), {"kernel.pid_max": "4242"}, 'sysctl "kernel.pid_max" is not in a separate kernel namespace'),
        (_without(""), {"user.max_user_namespaces": "0"},
         "setting ucounts without a user namespace not allowed: user.max_user_namespaces"),
    ]
    with open("/proc/sys/kernel/domainname") as f:
        domainname = f.read()
    for namespaces, sysctls, message in cases:
        result = _bundle_run(runtime, namespaces, sysctls)
        assert result.returncode == 1, (sysctls, result.stderr)
        assert result.stderr == f"berth-runtime: {message}\n", (sysctls, result.stderr)
    assert (_read(IPC_KEY), _read(NET_KEY)) == (ipc_host, net_host)
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read() == domainname


def test_runtime_sets_sysctls_in_namespaces_of_its_own(runtime, host_values, private_namespaces):  # noqa: F811
    ipc_host, ipc_value = host_values[IPC_KEY]
    net_host, net_value = host_values[NET_KEY]
    container_id = runtime.new_id()
    config = base_config(container_id, "cat", _path(IPC_KEY), _path(NET_KEY), "/proc/sys/kernel/domainname")
    config["linux"]["sysctl"] = {IPC_KEY: ipc_value, NET_KEY: net_value, "kernel.domainname": "own"}
    runtime.write_config(config)
    result = runtime("run", "-b", runtime.bundle, container_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [ipc_value, net_value, "own"]
    # joining another process's namespaces (a path that is not ours) is allowed, and writes there
    pid = private_namespaces
    joined = [{"type": t} for t in ("pid", "mount")] + [
        {"type": kind, "path": f"/proc/{pid}/ns/{name}"} for kind, name in (("network", "net"), ("ipc", "ipc"))]
    result = _bundle_run(runtime, joined, {IPC_KEY: ipc_value, NET_KEY: net_value})
    assert result.returncode == 0, result.stderr
    out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", f"--ipc=/proc/{pid}/ns/ipc", "cat",
                          _path(IPC_KEY), _path(NET_KEY)], capture_output=True, text=True, check=True).stdout
    assert out.split() == [ipc_value, net_value]
    assert (_read(IPC_KEY), _read(NET_KEY)) == (ipc_host, net_host)
