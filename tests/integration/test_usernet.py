"""User-defined networks against the real kernel: network create/ls/inspect/rm/prune,
connect/disconnect (50 rounds of churn too), containers on several networks, --ip and
--network-alias, isolation between networks, internal networks, icc=false per network,
docker's errors with nothing half-made, and a compose project network through the API.
Every test's networks use its own subnets (free_test_subnet) and bridge names; the fixtures'
leak check removes them with berth and looks for bridges, nft tables, leases left behind."""

import json
import os
import subprocess

from conftest import free_test_subnet, wait_for


def subnet_and_gateway() -> tuple[str, str]:
    subnet = free_test_subnet()
    return subnet, subnet.rsplit(".", 1)[0] + ".1"


def host_of(subnet: str, last: int) -> str:
    return subnet.rsplit(".", 1)[0] + f".{last}"


def bridge_name() -> str:
    return "bu" + os.urandom(4).hex()


def make_network(b, name: str, *flags: str) -> tuple[str, str]:
    """A network on its own subnet and bridge name: (subnet, bridge)."""
    subnet = free_test_subnet()
    bridge = bridge_name()
    b.ok("network", "create", "--subnet", subnet, "-o", f"com.docker.network.bridge.name={bridge}", *flags, name)
    return subnet, bridge


def inspect(b, ref: str, what: str = "network") -> dict:
    return json.loads(b.ok(what, "inspect", ref))[0]


def pings(b, container: str, address: str) -> bool:
    return b("exec", container, "ping", "-c", "1", "-W", "1", address).returncode == 0


def leases(b, network_id: str) -> list[str]:
    directory = os.path.join(b.root, "networks", network_id, "leases")
    return sorted(n for n in os.listdir(directory) if not n.startswith(".")) if os.path.isdir(directory) else []


def links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def nft_table(b, family: str = "ip") -> str:
    from berth.network.nft import table_name

    return subprocess.run(["nft", "list", "table", family, table_name(b.root) + "_net"], capture_output=True,
                          text=True).stdout


def test_create_inspect_ls_rm(busybox):
    b = busybox
    subnet = free_test_subnet()
    base = subnet.rsplit(".", 1)[0]
    bridge = bridge_name()
    network_id = b.ok("network", "create", "-d", "bridge", "--subnet", subnet, "--gateway", f"{base}.254",
                      "--ip-range", f"{base}.128/25", "--label", "tier=front", "--attachable",
                      "-o", f"com.docker.network.bridge.name={bridge}", "-o", "com.docker.network.driver.mtu=1400",
                      "web").strip()
    assert len(network_id) == 64
    shown = inspect(b, "web")
    assert shown["Name"] == "web" and shown["Id"] == network_id and shown["Driver"] == "bridge"
    assert shown["Scope"] == "local" and shown["EnableIPv6"] is False and shown["Attachable"] is True
    assert shown["IPAM"] == {"Driver": "default", "Options": None,
                             "Config": [{"Subnet": subnet, "IPRange": f"{base}.128/25", "Gateway": f"{base}.254"}]}
    assert shown["Internal"] is False and shown["Ingress"] is False and shown["ConfigOnly"] is False
    assert shown["ConfigFrom"] == {"Network": ""} and shown["Containers"] == {}
    assert shown["Options"] == {"com.docker.network.bridge.name": bridge, "com.docker.network.driver.mtu": "1400"}
    assert shown["Labels"] == {"tier": "front"}
    assert list(shown) == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv4", "EnableIPv6", "IPAM", "Internal",
                           "Attachable", "Ingress", "ConfigFrom", "ConfigOnly", "Containers", "Options", "Labels"]
    # by ID and ID prefix too; the bridge exists with its address and MTU
    assert inspect(b, network_id[:10])["Name"] == "web"
    with open(f"/sys/class/net/{bridge}/mtu") as f:
        assert f.read().strip() == "1400"
    assert f"inet {base}.254/" in subprocess.run(["ip", "-4", "addr", "show", bridge], capture_output=True,
                                                  text=True).stdout

    # a container gets its address from the ip-range; inspect's Containers shows it
    b.ok("run", "-d", "--name", "c1", "--network", "web", "busybox", "sleep", "300")
    address = inspect(b, "c1", "container")["NetworkSettings"]["Networks"]["web"]["IPAddress"]
    assert int(address.rsplit(".", 1)[1]) >= 128
    containers = inspect(b, "web")["Containers"]
    assert [c["Name"] for c in containers.values()] == ["c1"]
    assert list(containers.values())[0]["IPv4Address"] == f"{address}/24"

    b.ok("network", "create", "--subnet", free_test_subnet(), "-o",
         f"com.docker.network.bridge.name={bridge_name()}", "--internal", "--label", "tier=back", "back")
    ls = b.ok("network", "ls").splitlines()
    assert ls[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [row.split()[1] for row in ls[1:]] == ["back", "bridge", "host", "none", "web"]
    assert b.ok("network", "ls", "-q", "--no-trunc", "-f", "name=web").split() == [network_id]
    assert b.ok("network", "ls", "--format", "{{.Name}}", "-f", "type=custom").split() == ["back", "web"]
    assert b.ok("network", "ls", "--format", "{{.Name}}", "-f", "label=tier=back").split() == ["back"]
    assert b.ok("network", "ls", "--format", "{{.Name}}", "-f", "dangling=true").split() == ["back"]
    assert b.ok("network", "ls", "--format", "{{.Name}} {{.Internal}}", "-f", "type=custom").splitlines() == \
        ["back true", "web false"]

    b.ok("rm", "-f", "c1")
    assert leases(b, network_id) == []
    assert b.ok("network", "rm", "web", "back").split() == ["web", "back"]
    assert bridge not in links()
    assert b.ok("network", "ls", "-q", "-f", "type=custom") == ""
    assert nft_table(b) == ""  # the last network takes the table along
    b.fails(1, "network", "inspect", "web", says="network web not found")


def test_bad_input_makes_nothing(busybox):
    b = busybox
    subnet, bridge = make_network(b, "taken")
    base = subnet.rsplit(".", 1)[0]
    before = links()

    b.fails(1, "network", "create", "--subnet", subnet, "other",
            says="Pool overlaps with other one on this address space")
    b.fails(1, "network", "create", "--subnet", f"{base}.128/25", "other", says="Pool overlaps with other one")
    other = free_test_subnet()
    b.fails(1, "network", "create", "--subnet", other, "--gateway", f"{base}.1", "other",
            says=f"no matching subnet for gateway {base}.1")
    b.fails(1, "network", "create", "--subnet", other, "--ip-range", f"{base}.0/26", "other",
            says=f"no matching subnet for range {base}.0/26")
    b.fails(1, "network", "create", "--gateway", f"{base}.1", "other",
            says="every ip-range or gateway must have a corresponding subnet")
    b.fails(1, "network", "create", "--subnet", "10.1.2.3", "other", says="invalid CIDR address: 10.1.2.3")
    b.fails(1, "network", "create", "--subnet", other, "taken", says="network with name taken already exists")
    b.fails(1, "network", "create", "bridge", says="network with name bridge already exists")
    b.fails(1, "network", "create", "-d", "overlay", "other", says='plugin "overlay" not found')
    b.fails(1, "network", "create", "--subnet", other, "-o", f"com.docker.network.bridge.name={bridge}", "other",
            says=f"bridge name {bridge} is already in use")
    b.fails(1, "network", "rm", "bridge", says="bridge is a pre-defined network and cannot be removed")
    b.fails(1, "network", "rm", "nope", says="network nope not found")
    assert b.ok("network", "ls", "--format", "{{.Name}}", "-f", "type=custom").split() == ["taken"]
    # no bridge of a refused network (berth-<id> by default; other tests' devices come and go)
    assert {name for name in links() - before if name.startswith("berth-")} == set()
    assert nft_table(b).count(": jump from_n") == 1  # the rules of "taken" alone

    # endpoints: --ip outside, taken, on a network without a user subnet, aliases on the bridge
    b.ok("run", "-d", "--name", "holder", "--network", "taken", "--ip", f"{base}.50", "busybox", "sleep", "300")
    b.fails(125, "run", "--rm", "--network", "taken", "--ip", "10.99.99.99", "busybox", "true",
            says="no configured subnet or ip-range contain the IP address 10.99.99.99")
    b.fails(125, "run", "--rm", "--name", "second", "--network", "taken", "--ip", f"{base}.50", "busybox", "true",
            says="Address already in use")
    b.fails(125, "run", "--rm", "--network", "taken", "--ip", f"{base}.1", "busybox", "true",
            says="Address already in use")
    b.ok("network", "create", "auto-subnet")
    b.fails(125, "run", "--rm", "--network", "auto-subnet", "--ip", "172.18.0.9", "busybox", "true",
            says="user specified IP address is supported only when connecting to networks with user configured "
                 "subnets")
    b.fails(125, "run", "--rm", "--network-alias", "x", "busybox", "true",
            says="network-scoped aliases are only supported for user-defined networks")
    b.fails(125, "run", "--rm", "--network", "nope", "busybox", "true", says="network nope not found")
    network_id = inspect(b, "taken")["Id"]
    assert leases(b, network_id) == [f"{base}.50"]  # the refused runs took nothing
    b.fails(1, "network", "rm", "taken", says=f"error while removing network: network taken id {network_id} has "
                                             "active endpoints")
    b.ok("rm", "-f", "holder")
    assert b.ok("network", "rm", "taken", "auto-subnet").split() == ["taken", "auto-subnet"]


def test_run_with_alias_ip_and_resolv_conf(busybox):
    b = busybox
    subnet, _ = make_network(b, "app")
    network_id = inspect(b, "app")["Id"]
    ip = host_of(subnet, 77)
    b.ok("run", "-d", "--name", "db", "--hostname", "dbhost", "--network", "app", "--network-alias", "database",
         "--network-alias", "store", "--ip", ip, "--dns", "10.0.0.53", "--dns-search", "example.test", "busybox",
         "sleep", "300")
    record = inspect(b, "db", "container")
    assert record["HostConfig"]["NetworkMode"] == "app"
    entry = record["NetworkSettings"]["Networks"]["app"]
    assert list(record["NetworkSettings"]["Networks"]) == ["app"]
    assert entry["Aliases"] == ["database", "store"]
    assert entry["IPAMConfig"] == {"IPv4Address": ip}
    assert entry["IPAddress"] == ip and entry["IPPrefixLen"] == 24 and entry["Gateway"] == host_of(subnet, 1)
    assert entry["NetworkID"] == network_id and len(entry["EndpointID"]) == 64
    assert entry["MacAddress"] == "02:42:" + ":".join(f"{int(p):02x}" for p in ip.split("."))
    assert entry["DNSNames"] == ["db", "database", "store", record["Id"][:12], "dbhost"]
    assert record["NetworkSettings"]["IPAddress"] == ""  # docker: only the default bridge's shows there

    resolv = b.ok("exec", "db", "cat", "/etc/resolv.conf")
    assert resolv.splitlines()[:3] == ["nameserver 127.0.0.11", "search example.test", "options ndots:0"]
    assert "# ExtServers: [10.0.0.53]" in resolv
    assert f"{ip}\tdbhost" in b.ok("exec", "db", "cat", "/etc/hosts")
    addresses = b.ok("exec", "db", "ip", "-4", "-o", "addr", "show", "eth0")
    assert f"inet {ip}/24" in addresses
    assert b.ok("exec", "db", "ip", "route").startswith(f"default via {host_of(subnet, 1)} dev eth0")

    # another container on the network reaches it; a stopped one gives its address back
    result = b("run", "--rm", "--network", "app", "busybox", "ping", "-c", "1", "-W", "2", ip)
    assert result.returncode == 0, result.stdout + result.stderr
    b.ok("stop", "-t", "0", "db")
    stopped = inspect(b, "db", "container")["NetworkSettings"]["Networks"]["app"]
    assert stopped["IPAddress"] == "" and stopped["Aliases"] == ["database", "store"]
    assert leases(b, network_id) == []
    b.ok("start", "db")  # the same --ip again
    assert inspect(b, "db", "container")["NetworkSettings"]["Networks"]["app"]["IPAddress"] == ip


def test_several_networks_connect_disconnect(busybox):
    b = busybox
    first, _ = make_network(b, "front")
    second, bridge2 = make_network(b, "back")
    back_id = inspect(b, "back")["Id"]
    b.ok("run", "-d", "--name", "multi", "--network", "front", "busybox", "sleep", "300")
    b.ok("network", "connect", "--alias", "api", "back", "multi")
    record = inspect(b, "multi", "container")
    assert list(record["NetworkSettings"]["Networks"]) == ["front", "back"]
    back = record["NetworkSettings"]["Networks"]["back"]
    assert back["Aliases"] == ["api"] and back["IPAddress"].startswith(second.rsplit(".", 1)[0] + ".")
    assert "multi" in [c["Name"] for c in inspect(b, "back")["Containers"].values()]
    addresses = b.ok("exec", "multi", "ip", "-4", "-o", "addr")
    assert any(line.split()[1] == "eth1" and f"inet {back['IPAddress']}/24" in line
               for line in addresses.splitlines())
    routes = b.ok("exec", "multi", "ip", "route").splitlines()
    assert [r.strip() for r in routes if r.startswith("default")] == [f"default via {host_of(first, 1)} dev eth0"]
    b.fails(1, "network", "connect", "back", "multi", says="endpoint with name multi already exists in network back")

    # a stopped container: connected now, plugged in at its start
    b.ok("create", "--name", "later", "--network", "front", "busybox", "sleep", "300")
    b.ok("network", "connect", "back", "later")
    assert leases(b, back_id) == [back["IPAddress"]]
    b.ok("start", "later")
    later = inspect(b, "later", "container")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
    assert later and pings(b, "later", back["IPAddress"])

    b.ok("network", "disconnect", "back", "multi")
    assert "back" not in inspect(b, "multi", "container")["NetworkSettings"]["Networks"]
    assert "eth1" not in b.ok("exec", "multi", "ip", "-o", "link")
    assert leases(b, back_id) == [later]
    b.fails(1, "network", "disconnect", "back", "multi", says="is not connected to network back")
    b.fails(1, "network", "connect", "nope", "multi", says="network nope not found")
    b.fails(1, "network", "connect", "back", "nobody", says="No such container: nobody")

    # churn: 50 connects and disconnects of a running container leave nothing behind
    ports_before = sorted(os.listdir(f"/sys/class/net/{bridge2}/brif"))
    for _ in range(25):
        b.ok("network", "connect", "back", "multi")
        ip = inspect(b, "multi", "container")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
        assert pings(b, "later", ip)
        b.ok("network", "disconnect", "back", "multi")
    assert leases(b, back_id) == [later]
    assert "eth1" not in b.ok("exec", "multi", "ip", "-o", "link")
    wait_for(lambda: sorted(os.listdir(f"/sys/class/net/{bridge2}/brif")) == ports_before, 10, "no veth left")


def test_isolation_between_networks(busybox):
    b = busybox
    subnet_a, _ = make_network(b, "net-a")
    subnet_b, _ = make_network(b, "net-b")
    b.ok("run", "-d", "--name", "a1", "--network", "net-a", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "a2", "--network", "net-a", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "b1", "--network", "net-b", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "plain", "busybox", "sleep", "300")  # the default bridge
    ip = {name: inspect(b, name, "container")["NetworkSettings"]["Networks"][net]["IPAddress"]
          for name, net in (("a1", "net-a"), ("a2", "net-a"), ("b1", "net-b"), ("plain", "bridge"))}
    assert pings(b, "a1", ip["a2"])  # within a network
    # the other network is routed (its gateway answers: the host), yet its containers are cut off
    assert pings(b, "a1", host_of(subnet_b, 1))
    assert not pings(b, "a1", ip["b1"])
    assert not pings(b, "b1", ip["a1"])
    assert not pings(b, "plain", ip["a1"])  # nor to or from the default bridge
    assert not pings(b, "a1", ip["plain"])
    # a container on both reaches both
    b.ok("network", "connect", "net-b", "a2")
    assert pings(b, "a2", ip["b1"]) and pings(b, "a2", ip["a1"])


def test_internal_network(busybox):
    b = busybox
    subnet, bridge = make_network(b, "closed", "--internal")
    open_subnet, _ = make_network(b, "open")
    assert inspect(b, "closed")["Internal"] is True
    b.ok("run", "-d", "--name", "in1", "--network", "closed", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "in2", "--network", "closed", "busybox", "sleep", "300")
    b.ok("run", "-d", "--name", "out", "--network", "open", "busybox", "sleep", "300")
    routes = b.ok("exec", "in1", "ip", "route")
    assert "default" not in routes  # no route out
    peer = inspect(b, "in2", "container")["NetworkSettings"]["Networks"]["closed"]["IPAddress"]
    assert pings(b, "in1", peer)
    assert pings(b, "in1", host_of(subnet, 1))  # its gateway, as docker's
    out_ip = inspect(b, "out", "container")["NetworkSettings"]["Networks"]["open"]["IPAddress"]
    assert not pings(b, "out", peer)  # nothing enters from another bridge
    # even with a route added by hand, nothing leaves the bridge (the firewall drops it)
    b.ok("exec", "--privileged", "in1", "ip", "route", "add", "default", "via", host_of(subnet, 1))
    assert not pings(b, "in1", out_ip)
    assert pings(b, "out", host_of(open_subnet, 1))
    table = nft_table(b)
    assert f'oifname != "{bridge}" masquerade' not in table  # no masquerade for it
    assert "masquerade" in table  # the open one's


def test_icc_per_network(busybox):
    b = busybox
    subnet, _ = make_network(b, "noicc", "-o", "com.docker.network.bridge.enable_icc=false")
    make_network(b, "icc")
    assert inspect(b, "noicc")["Options"]["com.docker.network.bridge.enable_icc"] == "false"
    for name, net in (("n1", "noicc"), ("n2", "noicc"), ("i1", "icc"), ("i2", "icc")):
        b.ok("run", "-d", "--name", name, "--network", net, "busybox", "sleep", "300")
    ip = {name: inspect(b, name, "container")["NetworkSettings"]["Networks"][net]["IPAddress"]
          for name, net in (("n2", "noicc"), ("i2", "icc"))}
    assert not pings(b, "n1", ip["n2"])
    assert pings(b, "n1", host_of(subnet, 1))  # the gateway still answers
    assert pings(b, "i1", ip["i2"])


def test_prune_and_leaks(busybox):
    b = busybox
    make_network(b, "keep", "--label", "keep=yes")
    make_network(b, "used")
    make_network(b, "unused")
    bridge = inspect(b, "unused")["Options"]["com.docker.network.bridge.name"]
    b.ok("create", "--name", "user", "--network", "used", "busybox", "true")
    assert b.ok("network", "prune", "-f", "--filter", "label!=keep=yes") == "Deleted Networks:\nunused\n\n"
    assert bridge not in links()
    assert b.ok("network", "ls", "--format", "{{.Name}}", "-f", "type=custom").split() == ["keep", "used"]
    assert b.ok("network", "prune", "-f", "--filter", "label=nothing") == ""


COMPOSE = """version: "2.4"
services:
  web:
    image: busybox:latest
    command: ["sleep", "300"]
  db:
    image: busybox:latest
    command: ["sleep", "300"]
    networks: [default, back]
networks:
  default:
    ipam:
      config:
        - subnet: {subnet}
  back:
    ipam:
      config:
        - subnet: {back}
"""


def test_compose_project_network(api):
    from test_api_compose import compose_ok

    b = api.berth
    workdir = os.path.join(b.base, "app")
    os.makedirs(workdir)
    subnet = free_test_subnet()
    with open(os.path.join(workdir, "docker-compose.yml"), "w") as f:
        f.write(COMPOSE.format(subnet=subnet, back=free_test_subnet()))
    compose_ok(api, workdir, "up", "-d")
    network = inspect(b, "berthapp_default")
    assert network["IPAM"]["Config"][0]["Subnet"] == subnet
    assert network["Labels"]["com.docker.compose.project"] == "berthapp"
    assert sorted(c["Name"] for c in network["Containers"].values()) == ["berthapp_db_1", "berthapp_web_1"]
    web = inspect(b, "berthapp_web_1", "container")["NetworkSettings"]["Networks"]["berthapp_default"]
    assert "web" in web["Aliases"] and "web" in web["DNSNames"]
    db_networks = inspect(b, "berthapp_db_1", "container")["NetworkSettings"]["Networks"]
    assert sorted(db_networks) == ["berthapp_back", "berthapp_default"]  # the second one by /connect
    assert "db" in db_networks["berthapp_back"]["Aliases"] and db_networks["berthapp_back"]["IPAddress"]
    db = db_networks["berthapp_default"]
    assert pings(b, "berthapp_web_1", db["IPAddress"])
    assert not pings(b, "berthapp_web_1", db_networks["berthapp_back"]["IPAddress"])  # web is not on back
    # the docker CLI sees the same through the API
    assert api.docker_ok("network", "inspect", "-f", "{{.Name}} {{.Driver}}", "berthapp_default") == \
        "berthapp_default bridge\n"
    compose_ok(api, workdir, "down", "-t", "0")
    assert b.ok("network", "ls", "-q", "-f", "type=custom") == ""
    assert b.container_ids() == []


def test_docker_cli_create_connect_disconnect(api):
    b = api.berth
    subnet = free_test_subnet()
    api.docker_ok("network", "create", "--subnet", subnet, "--label", "via=api", "mine")
    assert inspect(b, "mine")["Labels"] == {"via": "api"}
    b.ok("run", "-d", "--name", "box", "busybox", "sleep", "300")
    result = api.docker("network", "connect", "--ip", host_of(subnet, 9), "mine", "box")
    # the default bridge's container joins a user network as its eth1
    assert result.returncode == 0, result.stderr
    assert host_of(subnet, 9) in b.ok("exec", "box", "ip", "-4", "-o", "addr", "show", "eth1")
    assert api.docker("network", "rm", "mine").returncode == 1
    api.docker_ok("network", "disconnect", "mine", "box")
    api.docker_ok("network", "rm", "mine")
    result = api.docker("network", "rm", "bridge")
    assert result.returncode == 1 and "pre-defined network" in result.stderr


def test_published_port_on_a_user_network(busybox):
    from test_publish import free_ports, http_get

    b = busybox
    make_network(b, "pub")
    port = free_ports(1)[0]
    b.ok("run", "-d", "--name", "srv", "--network", "pub", "-p", f"127.0.0.1:{port}:80", "busybox", "sh", "-c",
         "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www")
    ports = inspect(b, "srv", "container")["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert b.ok("port", "srv").strip() == f"80/tcp -> 127.0.0.1:{port}"
    wait_for(lambda: http_get("127.0.0.1", port, timeout=1.0) == "hello", 30, f"the page on 127.0.0.1:{port}")
    b.ok("rm", "-f", "srv")
    assert http_get("127.0.0.1", port, timeout=1.0) is None


def test_names_follow_a_rename_and_creates_race_for_a_name(busybox):
    b = busybox
    make_network(b, "named")
    b.ok("run", "-d", "--name", "old", "--network", "named", "--network-alias", "a", "busybox", "sleep", "300")
    b.ok("rename", "old", "new")
    record = inspect(b, "new", "container")
    assert record["NetworkSettings"]["Networks"]["named"]["DNSNames"] == ["new", "a", record["Id"][:12]]

    # five creates of one name at once: exactly one network, one bridge
    procs = [subprocess.Popen(b.cmd("network", "create", "--subnet", free_test_subnet(), "-o",
                                    f"com.docker.network.bridge.name={bridge_name()}", "race"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1, 1, 1, 1], results
    assert all("network with name race already exists" in err for code, err in results if code)
    assert b.ok("network", "ls", "--format", "{{.Name}}", "-f", "name=race").split() == ["race"]


def test_bridge_and_firewall_made_again_after_a_reboot(busybox):
    b = busybox
    _, bridge = make_network(b, "durable")
    network_id = inspect(b, "durable")["Id"]
    # what a reboot takes: the device, the nft table, the run root's marker (the record stays)
    subprocess.run(["ip", "link", "delete", bridge], check=True)
    from berth.network.nft import table_name

    for family in ("ip", "bridge"):
        subprocess.run(["nft", "delete", "table", family, table_name(b.root) + "_net"], check=True)
    os.unlink(os.path.join(b.run_root, "networks", network_id + ".ready"))
    assert inspect(b, "durable")["Name"] == "durable"
    b.ok("run", "-d", "--name", "back", "--network", "durable", "busybox", "sleep", "300")
    assert bridge in links()
    assert f'"{bridge}" : jump from_n{network_id[:12]}' in nft_table(b)
    address = inspect(b, "back", "container")["NetworkSettings"]["Networks"]["durable"]["IPAddress"]
    result = b("run", "--rm", "--network", "durable", "busybox", "ping", "-c", "1", "-W", "2", address)
    assert result.returncode == 0, result.stderr


def test_a_default_bridge_made_later_under_another_name_is_isolated_too(busybox):
    b = busybox
    make_network(b, "first")
    b.ok("run", "-d", "--name", "f1", "--network", "first", "busybox", "sleep", "300")
    # the default bridge is made (first use) under a name it did not have when the network was
    b.bridge = "bt" + os.urandom(4).hex()
    b.configure()
    b.ok("run", "-d", "--name", "plain", "busybox", "sleep", "300")
    assert f'"{b.bridge}"' in nft_table(b)
    address = inspect(b, "f1", "container")["NetworkSettings"]["Networks"]["first"]["IPAddress"]
    assert not pings(b, "plain", address)


def test_docker_cli_runs_a_container_on_two_networks(api):
    b = api.berth
    first, second = free_test_subnet(), free_test_subnet()
    api.docker_ok("network", "create", "--subnet", first, "one")
    api.docker_ok("network", "create", "--subnet", second, "two")
    api.docker_ok("run", "-d", "--name", "both", "--network", "one", "--network", "two", "busybox", "sleep", "300")
    networks = inspect(b, "both", "container")["NetworkSettings"]["Networks"]
    assert sorted(networks) == ["one", "two"] and all(n["IPAddress"] for n in networks.values())
    addresses = b.ok("exec", "both", "ip", "-4", "-o", "addr")
    assert networks["one"]["IPAddress"] in addresses and networks["two"]["IPAddress"] in addresses
    api.docker_ok("rm", "-f", "both")


def test_rm_force_waits_for_a_release_another_process_claimed(busybox):
    """rm -f of a running container on a user network: its supervisor may be releasing the
    endpoint right then (claimed by renaming endpoint-<id>.json). rm waits for that claim (and
    takes it over when its claimer dies without finishing) before removing the run directory
    that holds it: the lease was left for good when rm went on (seen in CI)."""
    b = busybox
    make_network(b, "claimed")
    network_id = inspect(b, "claimed")["Id"]
    b.ok("run", "-d", "--name", "held", "--network", "claimed", "busybox", "sleep", "300")
    container_id = inspect(b, "held", "container")["Id"]
    assert len(leases(b, network_id)) == 1
    run_dir = os.path.join(b.run_root, "containers", container_id)
    [endpoint] = [n for n in os.listdir(run_dir) if n.startswith("endpoint-")]
    claimer = subprocess.Popen(["sleep", "1"])  # a releaser that dies halfway, a second from now
    try:
        os.rename(os.path.join(run_dir, endpoint), os.path.join(run_dir, f"{endpoint}.releasing-{claimer.pid}"))
        b.ok("rm", "-f", "held")
    finally:
        claimer.kill()
        claimer.wait()
    assert leases(b, network_id) == []
