"""Bridged networking, docker's default: each test's berth has its own bridge and /24 (see
conftest's Berth), containers get leases, veths and routes on it, ICC and links follow the
engine settings, and nothing is left behind. Traffic goes only to addresses berth made."""

import json
import os
import subprocess
import threading

import pytest

from berth.network.nft import table_name
from conftest import listening, refused, wait_for


def gateway(b) -> str:
    return b.subnet.rsplit(".", 1)[0] + ".1"


def leases(b) -> list[str]:
    try:
        return sorted(n for n in os.listdir(os.path.join(b.root, "network", "leases")) if not n.startswith("."))
    except FileNotFoundError:
        return []


def veths_on(bridge: str) -> list[str]:
    """Interfaces enslaved to `bridge` (the host ends of container veths)."""
    try:
        return sorted(os.listdir(f"/sys/class/net/{bridge}/brif"))
    except FileNotFoundError:
        return []


def wait_no_veths(bridge: str) -> list[str]:
    """The kernel removes a veth when its container's network namespace dies, a little after the exit."""
    wait_for(lambda: not veths_on(bridge), what=f"the veths on {bridge} to go")
    return veths_on(bridge)


def wait_listening(b, ref: str, port: int) -> None:
    pid = int(inspect(b, ref, "{{.State.Pid}}"))
    wait_for(lambda: listening(pid, port), what=f"{ref} to listen on {port}")


def unanswered(ping: subprocess.CompletedProcess) -> None:
    """busybox ping got no reply: exit 1, one packet out, none back."""
    assert "1 packets transmitted, 0 packets received" in ping.stdout, ping.stdout
    refused(ping, 1)


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie its parent has yet to reap."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def inspect(b, ref: str, template: str) -> str:
    return b.ok("inspect", "-f", template, ref).strip()


def nft_table(b, family: str = "ip") -> str:
    return subprocess.run(["nft", "list", "table", family, table_name(b.root)], capture_output=True,
                          text=True).stdout


def test_default_run_is_bridged(busybox):
    out = busybox.ok("run", "--rm", "--hostname", "box", "busybox", "sh", "-c",
                     f"ip -o -4 addr show eth0; ip route; tail -1 /etc/hosts; ping -c1 -W2 {gateway(busybox)}")
    prefix = busybox.subnet.rsplit(".", 1)[0] + "."
    address = out.split(" inet ")[1].split("/")[0]
    assert address.startswith(prefix) and address != gateway(busybox)
    assert f"default via {gateway(busybox)} dev eth0" in out
    assert f"{address}\tbox\n" in out  # docker: the container's own line last in /etc/hosts
    assert "1 packets received" in out
    with open(f"/sys/class/net/{busybox.bridge}/operstate") as f:
        assert f.read().strip() in ("up", "unknown")
    assert leases(busybox) == []  # released when it stopped
    assert wait_no_veths(busybox.bridge) == []


def test_inspect_network_settings_running_then_stopped(busybox):
    cid = busybox.ok("run", "-d", "busybox", "sleep", "60").strip()
    settings = json.loads(inspect(busybox, cid, "{{json .NetworkSettings}}"))
    address = settings["IPAddress"]
    assert address.startswith(busybox.subnet.rsplit(".", 1)[0] + ".")
    assert settings["Gateway"] == gateway(busybox) and settings["IPPrefixLen"] == 24
    assert settings["MacAddress"] == "02:42:" + ":".join(f"{int(p):02x}" for p in address.split("."))
    bridge = settings["Networks"]["bridge"]
    assert bridge["IPAddress"] == address and bridge["Gateway"] == gateway(busybox)
    assert bridge["EndpointID"] == settings["EndpointID"] and len(bridge["EndpointID"]) == 64
    assert inspect(busybox, cid, "{{.HostConfig.NetworkMode}}") == "bridge"
    assert leases(busybox) == [address]
    mac_in_container = busybox.ok("exec", cid, "cat", "/sys/class/net/eth0/address").strip()
    assert mac_in_container == settings["MacAddress"]
    assert len(veths_on(busybox.bridge)) == 1 and veths_on(busybox.bridge)[0].startswith("berth")
    busybox.ok("stop", "-t", "0", cid)
    stopped = json.loads(inspect(busybox, cid, "{{json .NetworkSettings}}"))
    assert stopped["IPAddress"] == "" and stopped["Ports"] == {} and stopped["Networks"]["bridge"]["IPAddress"] == ""
    assert leases(busybox) == []
    assert wait_no_veths(busybox.bridge) == []


def test_containers_reach_each_other_and_the_gateway(busybox):
    server = busybox.ok("run", "-d", "busybox", "nc", "-ll", "-p", "7000", "-e", "echo", "pong").strip()
    address = inspect(busybox, server, "{{.NetworkSettings.IPAddress}}")
    wait_listening(busybox, server, 7000)
    out = busybox.ok("run", "--rm", "busybox", "sh", "-c", f"nc -w2 {address} 7000 </dev/null")
    assert out == "pong\n"
    busybox.ok("rm", "-f", server)


def test_none_network_has_no_route_out(busybox):
    out = busybox.ok("run", "--rm", "--net", "none", "busybox", "sh", "-c", "ip -o link; ip route")
    assert [line.split(":")[1].strip() for line in out.splitlines() if ": " in line] == ["lo"]
    assert out.count("\n") == 1  # no routes at all


def test_icc_false_drops_all_but_links(busybox):
    """The book's importantData / importantWebapp / buggyProgram scenario."""
    busybox.configure(icc=False)
    busybox.ok("run", "-d", "--name", "importantData", "--expose", "3306", "busybox",
               "nc", "-ll", "-p", "3306", "-e", "echo", "data")
    busybox.ok("run", "-d", "--name", "importantWebapp", "--link", "importantData:db", "busybox", "sleep", "60")
    busybox.ok("run", "-d", "--name", "buggyProgram", "busybox", "sleep", "60")
    data_ip = inspect(busybox, "importantData", "{{.NetworkSettings.IPAddress}}")
    webapp_ip = inspect(busybox, "importantWebapp", "{{.NetworkSettings.IPAddress}}")
    wait_listening(busybox, "importantData", 3306)
    linked = busybox("exec", "importantWebapp", "nc", "-w2", "db", "3306")
    assert linked.returncode == 0 and linked.stdout == "data\n"
    buggy = busybox("exec", "buggyProgram", "nc", "-w2", data_ip, "3306")
    assert buggy.stdout == ""
    refused(buggy, 1, "nc: timed out")  # dropped: no answer, not even a reset
    reverse = busybox("exec", "importantData", "ping", "-c1", "-W1", webapp_ip)  # links are one-way
    unanswered(reverse)
    unanswered(busybox("exec", "importantWebapp", "ping", "-c1", "-W1", data_ip))  # only the port
    assert busybox("exec", "buggyProgram", "ping", "-c1", "-W2", gateway(busybox)).returncode == 0
    assert f"{webapp_ip} . {data_ip} . tcp . 3306" in nft_table(busybox, "bridge")
    busybox.ok("rm", "-f", "importantWebapp")
    assert data_ip not in nft_table(busybox, "bridge")  # the exception went with the link's owner
    unanswered(busybox("exec", "buggyProgram", "ping", "-c1", "-W1", data_ip))


def test_icc_true_is_the_default(busybox):
    busybox.ok("run", "-d", "--name", "peer", "busybox", "sleep", "60")
    other = inspect(busybox, "peer", "{{.NetworkSettings.IPAddress}}")
    assert busybox("run", "--rm", "busybox", "ping", "-c1", "-W2", other).returncode == 0
    assert "chain forward" not in nft_table(busybox, "bridge")


def test_link_environment_and_hosts(busybox):
    busybox.ok("run", "-d", "--name", "my-db", "--hostname", "dbhost", "--expose", "5432", "--expose", "80",
               "-e", "SECRET=x", "busybox", "sleep", "60")
    target_ip = inspect(busybox, "my-db", "{{.NetworkSettings.IPAddress}}")
    target_id = inspect(busybox, "my-db", "{{.Id}}")
    out = busybox.ok("run", "--rm", "--name", "web", "--link", "my-db:the-db", "busybox", "sh", "-c",
                     "env; echo ---; cat /etc/hosts")
    env_text, hosts = out.split("---\n")
    env = dict(line.split("=", 1) for line in env_text.splitlines())
    assert env["THE_DB_NAME"] == "/web/the-db"
    assert env["THE_DB_PORT"] == f"tcp://{target_ip}:80"  # the lowest exposed port
    assert env["THE_DB_PORT_5432_TCP"] == f"tcp://{target_ip}:5432"
    assert env["THE_DB_PORT_5432_TCP_ADDR"] == target_ip
    assert env["THE_DB_PORT_5432_TCP_PORT"] == "5432" and env["THE_DB_PORT_80_TCP_PROTO"] == "tcp"
    assert env["THE_DB_ENV_SECRET"] == "x"
    assert f"{target_ip}\tthe-db dbhost my-db" in hosts.splitlines()
    assert len(target_id) == 64
    # Links are not transitive and not reversed: the target sees no variables of ours.
    assert "WEB_" not in busybox.ok("exec", "my-db", "env")


def test_link_needs_a_running_target(busybox):
    busybox.ok("create", "--name", "sleeper", "busybox", "true")
    result = busybox("run", "--name", "linker", "--link", "sleeper:db", "busybox", "true")
    assert result.returncode == 125
    assert "Cannot link to a non running container: /sleeper AS /linker/db" in result.stderr
    assert inspect(busybox, "linker", "{{.State.Running}}") == "false"
    assert leases(busybox) == []


def test_mtu_and_fixed_cidr(busybox):
    base = busybox.subnet.rsplit(".", 1)[0]
    busybox.configure(mtu=1400, **{"fixed-cidr": f"{base}.64/26"})
    out = busybox.ok("run", "--rm", "busybox", "sh", "-c", "cat /sys/class/net/eth0/mtu; ip -o -4 addr show eth0")
    mtu, addr = out.splitlines()
    assert mtu == "1400"
    last = int(addr.split(" inet ")[1].split("/")[0].rsplit(".", 1)[1])
    assert 64 < last < 127
    with open(f"/sys/class/net/{busybox.bridge}/mtu") as f:
        assert f.read().strip() == "1400"


def test_fixed_cidr_outside_bip_is_refused(busybox):
    result = busybox("--fixed-cidr", "10.99.0.0/24", "run", "--rm", "busybox", "true")
    assert result.returncode == 125
    assert "fixed-cidr 10.99.0.0/24 is not inside the bridge subnet" in result.stderr
    assert result.stderr.count("\n") == 1
    assert busybox.container_ids() == []
    assert not os.path.exists(f"/sys/class/net/{busybox.bridge}")


def test_settings_change_refused_while_in_use(busybox):
    busybox.ok("run", "-d", "--name", "holder", "busybox", "sleep", "60")
    base = busybox.subnet.rsplit(".", 1)[0]
    result = busybox("--mtu", "1300", "run", "--rm", "busybox", "true")
    assert result.returncode == 125 and "cannot change the bridge settings while 1 container(s)" in result.stderr
    with open(f"/sys/class/net/{busybox.bridge}/mtu") as f:
        assert f.read().strip() == "1500"  # no silent half-change
    busybox.ok("rm", "-f", "holder")
    assert busybox.ok("--mtu", "1300", "run", "--rm", "busybox", "cat", "/sys/class/net/eth0/mtu") == "1300\n"
    assert busybox.ok("--mtu", "1300", "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show",
                      "eth0").split(" inet ")[1].startswith(base)


def test_user_bridge_is_used_and_never_deleted(busybox):
    name = "bu" + os.urandom(4).hex()
    base = busybox.subnet.rsplit(".", 1)[0]
    subprocess.run(["ip", "link", "add", name, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{base}.1/24", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        busybox.configure(bip=None, bridge=name)
        out = busybox.ok("run", "--rm", "busybox", "ip", "route")
        assert f"default via {base}.1 dev eth0" in out
        assert not os.path.exists(f"/sys/class/net/{busybox.bridge}")  # berth made no bridge of its own
        busybox.teardown_network()
        assert os.path.exists(f"/sys/class/net/{name}")
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_missing_user_bridge_and_bip_conflict(busybox):
    busybox.configure(bip=None)
    result = busybox("-b", "nosuchbr0", "run", "--rm", "busybox", "true")
    assert result.returncode == 125
    assert "bridge device with non default name nosuchbr0 must be created manually" in result.stderr
    result = busybox("-b", "nosuchbr0", "--bip", "10.1.2.1/24", "run", "--rm", "busybox", "true")
    assert result.returncode == 125 and "mutually exclusive" in result.stderr


def test_bridge_none_disables_bridged_networking(busybox):
    busybox.configure(bridge="none", bip=None)
    assert busybox.ok("run", "--rm", "busybox", "ip", "-o", "link").count("\n") == 1  # lo only
    result = busybox("run", "--rm", "--net", "bridge", "busybox", "true")
    assert result.returncode == 125 and "network bridge not found" in result.stderr
    assert "bridge" not in busybox.ok("network", "ls")


def test_host_gateway_and_engine_dns_defaults(busybox):
    busybox.configure(dns=["192.0.2.53"], **{"dns-search": ["corp.example"]})
    out = busybox.ok("run", "--rm", "--add-host", "host.docker.internal:host-gateway", "busybox", "sh", "-c",
                     "cat /etc/resolv.conf; cat /etc/hosts")
    assert "nameserver 192.0.2.53\nsearch corp.example\n" in out
    assert f"{gateway(busybox)}\thost.docker.internal\n" in out
    assert busybox.ok("run", "--rm", "--dns", "192.0.2.54", "busybox", "cat", "/etc/resolv.conf").startswith(
        "nameserver 192.0.2.54\n")


def test_network_inspect_bridge(busybox):
    cid = busybox.ok("run", "-d", "--name", "inspected", "busybox", "sleep", "60").strip()
    network = json.loads(busybox.ok("network", "inspect", "bridge"))[0]
    assert network["Driver"] == "bridge" and network["Name"] == "bridge"
    assert network["IPAM"]["Config"] == [{"Subnet": busybox.subnet, "Gateway": gateway(busybox)}]
    assert network["Options"]["com.docker.network.bridge.name"] == busybox.bridge
    entry = network["Containers"][cid]
    assert entry["Name"] == "inspected"
    assert entry["IPv4Address"] == inspect(busybox, cid, "{{.NetworkSettings.IPAddress}}") + "/24"


def test_supervisor_killed_then_next_command_cleans_up(busybox):
    cid = busybox.ok("run", "-d", "busybox", "sleep", "60").strip()
    with open(os.path.join(busybox.run_root, "containers", cid, "state.json")) as f:
        processes = json.load(f)
    os.kill(processes["monitor"][0], 9)
    os.kill(processes["pid"][0], 9)  # the container dies too (as on a host crash), nobody records it
    wait_for(lambda: all(gone(process[0]) for process in (processes["monitor"], processes["pid"])),
             what="the supervisor and the container to die")
    busybox.ok("ps", "-a")
    assert leases(busybox) == []
    assert wait_no_veths(busybox.bridge) == []
    assert inspect(busybox, cid, "{{.NetworkSettings.IPAddress}}") == ""


def test_fifty_concurrent_runs_get_distinct_addresses(busybox):
    ids, errors = [], []

    def start():
        result = busybox("run", "-d", "busybox", "sleep", "60")
        (ids if result.returncode == 0 else errors).append(result.stdout.strip() or result.stderr)

    threads = [threading.Thread(target=start) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    addresses = [inspect(busybox, cid, "{{.NetworkSettings.IPAddress}}") for cid in ids]
    assert len(set(addresses)) == 50 and all(a for a in addresses)
    assert sorted(addresses) == leases(busybox)
    busybox.ok("rm", "-f", *ids)
    assert leases(busybox) == []
    assert wait_no_veths(busybox.bridge) == []


@pytest.mark.parametrize("cycles", [200])
def test_start_stop_cycles_leak_nothing(busybox, cycles):
    cid = busybox.ok("create", "-p", "127.0.0.1::7000", "busybox", "sleep", "60").strip()

    def cycle():
        busybox.ok("start", cid)
        busybox.ok("kill", cid)
        busybox.ok("wait", cid)

    cycle()  # the bridge and its tables exist from here on
    rules = nft_table(busybox, "ip"), nft_table(busybox, "bridge")
    assert "publish_any" in rules[0] and "elements" not in rules[0]
    for _ in range(cycles - 1):
        cycle()
    assert (nft_table(busybox, "ip"), nft_table(busybox, "bridge")) == rules
    assert leases(busybox) == []
    assert [n for n in os.listdir(os.path.join(busybox.run_root, "network", "ports")) if not n.startswith(".")] == []
    assert wait_no_veths(busybox.bridge) == []
    assert not os.path.exists(os.path.join(busybox.run_root, "containers", cid, "network.json"))
