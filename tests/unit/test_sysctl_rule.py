"""runc's sysctl rule (berth.runtime.validate) and the engine's reading of docker's modes
(berth.engine.security.check_sysctls) on real records: which sysctls a container may set."""

import os

import pytest

from berth.engine.security import check_sysctls as engine_check
from berth.errors import InvalidArgument
from berth.runtime.validate import check_spec, check_sysctls, dotted


def _shares(*host_kinds: str):
    return lambda kind: kind in host_kinds


def _refusal(keys, *host_kinds: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        check_sysctls(keys, _shares(*host_kinds))
    return str(info.value)


def test_dotted_is_runcs_conversion():
    assert dotted("net/ipv4/ip_forward") == "net.ipv4.ip_forward"
    assert dotted("net/ipv4/conf/eno2.100/rp_filter") == "net.ipv4.conf.eno2/100.rp_filter"
    assert dotted("net.ipv4.conf.eno2/100.rp_filter") == "net.ipv4.conf.eno2/100.rp_filter"
    assert dotted("kernel") == "kernel"
    assert dotted("") == ""


def test_private_namespaces_take_their_sysctls():
    check_sysctls(["kernel.msgmax", "kernel.shm_rmid_forced", "fs.mqueue.msg_max", "net.core.somaxconn",
                   "net/ipv4/ip_forward", "kernel.domainname"], _shares("user"))
    check_sysctls(["user.max_user_namespaces"], _shares())


def test_each_kind_is_refused_in_the_hosts_namespace():
    assert _refusal(["kernel.msgmax"], "ipc") == 'sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace'
    assert _refusal(["fs.mqueue.queues_max"], "ipc") == \
        'sysctl "fs.mqueue.queues_max" is not allowed in the hosts ipc namespace'
    assert _refusal(["net/ipv4/ip_forward"], "network") == \
        'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'
    assert _refusal(["kernel.domainname"], "uts") == 'sysctl "kernel.domainname" is not in a separate kernel namespace'
    assert _refusal(["user.max_user_namespaces"], "user") == \
        "setting ucounts without a user namespace not allowed: user.max_user_namespaces"


def test_unnamespaced_and_conflicting_sysctls_are_refused_anywhere():
    assert _refusal(["kernel.pid_max"]) == 'sysctl "kernel.pid_max" is not in a separate kernel namespace'
    assert _refusal(["vm.swappiness"]) == 'sysctl "vm.swappiness" is not in a separate kernel namespace'
    assert _refusal(["kernel.hostname"]) == \
        'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'
    assert _refusal(['net."x'], "network") == 'sysctl "net.\\"x" not allowed in host network namespace'


def test_only_the_kinds_needed_are_asked():
    asked = []

    def shares_host(kind):
        asked.append(kind)
        return False

    check_sysctls(["kernel.msgmax"], shares_host)
    assert asked == ["ipc"]


def test_spec_namespaces_absent_or_our_own_path_are_the_hosts():
    me = os.getpid()

    def spec(namespaces):
        return {"linux": {"namespaces": namespaces, "sysctl": {"net.ipv4.ip_forward": "1"}}}

    check_spec(spec([{"type": "network"}]))
    check_spec({"linux": {"namespaces": []}})  # no sysctl: nothing to check
    for namespaces in ([], [{"type": "network", "path": f"/proc/{me}/ns/net"}],
                       [{"type": "network", "path": "/proc/self/ns/net"}]):
        with pytest.raises(InvalidArgument, match="not allowed in host network namespace"):
            check_spec(spec(namespaces))
    with pytest.raises(InvalidArgument, match="^invalid netns path: stat /nonexistent/net: no such file or directory$"):
        check_spec(spec([{"type": "network", "path": "/nonexistent/net"}]))


# -- the engine: docker's modes, container:<x> resolved through the donors' records ----------

def _record(container_id: str, network: str = "bridge", ipc: str = "private", pid: int = 0) -> dict:
    return {"Id": container_id, "State": {"Running": bool(pid), "Pid": pid},
            "HostConfig": {"NetworkMode": network, "IpcMode": ipc}}


def _loader(*records: dict):
    by_id = {r["Id"]: r for r in records}

    def load(container_id: str) -> dict:
        try:
            return by_id[container_id]
        except KeyError:
            raise FileNotFoundError(container_id) from None

    return load


def _engine_refusal(host: dict, *records: dict) -> str:
    with pytest.raises(InvalidArgument) as info:
        engine_check(host, _loader(*records))
    return str(info.value)


def test_engine_host_modes_are_refused():
    assert _engine_refusal({"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}}) == \
        'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'
    assert _engine_refusal({"NetworkMode": "none", "IpcMode": "host", "Sysctls": {"kernel.sem": "1 2 3 4"}}) == \
        'sysctl "kernel.sem" is not allowed in the hosts ipc namespace'
    assert _engine_refusal({"UTSMode": "host", "Sysctls": {"kernel.domainname": "x"}}) == \
        'sysctl "kernel.domainname" is not in a separate kernel namespace'


def test_engine_resolves_donors_recursively():
    a, b = _record("a" * 64, network="host", ipc="host"), _record("b" * 64, network="container:" + "a" * 64)
    assert _engine_refusal({"NetworkMode": "container:" + "b" * 64, "Sysctls": {"net.core.somaxconn": "1"}}, a, b) \
        == 'sysctl "net.core.somaxconn" not allowed in host network namespace'
    assert _engine_refusal({"IpcMode": "container:" + "a" * 64, "Sysctls": {"kernel.msgmax": "1"}}, a) == \
        'sysctl "kernel.msgmax" is not allowed in the hosts ipc namespace'
    private = _record("c" * 64, network="none", ipc="shareable")
    engine_check({"NetworkMode": "container:" + "c" * 64, "IpcMode": "container:" + "c" * 64,
                  "Sysctls": {"net.core.somaxconn": "1", "kernel.msgmax": "1", "kernel.domainname": "x"}},
                 _loader(private))


def test_engine_asks_a_running_donor_for_its_namespace():
    # Its record says bridge, but its pid (ours here) is in the host's namespaces: that decides.
    liar = _record("d" * 64, network="bridge", ipc="shareable", pid=os.getpid())
    assert _engine_refusal({"NetworkMode": "container:" + "d" * 64, "Sysctls": {"net.core.somaxconn": "1"}},
                           liar) == 'sysctl "net.core.somaxconn" not allowed in host network namespace'
    # A donor whose record is gone: the start-time check of the namespace paths decides.
    engine_check({"NetworkMode": "container:" + "e" * 64, "Sysctls": {"net.core.somaxconn": "1"}}, _loader())


# -- at start: the spec's namespaces, as the runtime will join them ----------------------------

class _User:
    uid = gid = 0
    additional_gids = ()
    home = "/root"


def _start_spec(host: dict, net_pid=None, ipc_pid=None) -> dict:
    from berth.engine.spec import StartInputs, build

    record = {"Id": "f" * 64, "Path": "true", "Args": [], "Config": {"Hostname": "h", "Env": []},
              "HostConfig": host, "ResolvConfPath": "/r", "HostnamePath": "/h", "HostsPath": "/s"}
    return build(record, _User(), "/nonexistent", None, StartInputs(net_pid=net_pid, ipc_pid=ipc_pid))


def test_start_checks_the_namespaces_the_spec_joins():
    donor = "container:" + "a" * 64
    with pytest.raises(InvalidArgument, match='^sysctl "net.core.somaxconn" not allowed in host network namespace$'):
        _start_spec({"NetworkMode": donor, "Sysctls": {"net.core.somaxconn": "1"}}, net_pid=os.getpid())
    with pytest.raises(InvalidArgument, match="is not allowed in the hosts ipc namespace"):
        _start_spec({"NetworkMode": "none", "IpcMode": donor, "Sysctls": {"kernel.msgmax": "1"}},
                    ipc_pid=os.getpid())
    spec = _start_spec({"NetworkMode": "none", "Sysctls": {"net.core.somaxconn": "1", "kernel.msgmax": "1"}})
    assert spec["linux"]["sysctl"] == {"net.core.somaxconn": "1", "kernel.msgmax": "1"}
