"""The network archetypes none, host and container:<x>, and DNS options (bridge: see
test_bridge.py). Traffic stays on loopback inside the containers' own namespaces."""

import os

from conftest import wait_for


def test_none_has_only_loopback(busybox):
    out = busybox.ok("run", "--rm", "--network", "none", "busybox", "sh", "-c", "ip -o link; ip route")
    assert [line.split(":")[1].strip() for line in out.splitlines() if ": " in line] == ["lo"]
    assert "default" not in out
    assert busybox.ok("inspect", "--format", "{{.HostConfig.NetworkMode}}",
                      busybox.ok("create", "--net", "none", "busybox", "true").strip()).strip() == "none"


def test_host_network_shares_the_hosts_namespace_and_files(busybox):
    out = busybox.ok("run", "--rm", "--network", "host", "busybox", "sh", "-c",
                     "readlink /proc/self/ns/net; hostname; cat /etc/hosts")
    lines = out.splitlines()
    assert lines[0] == os.readlink("/proc/self/ns/net")
    assert lines[1] == os.uname().nodename
    with open("/etc/hosts") as f:
        assert "\n".join(lines[2:]) + "\n" == f.read()


def test_container_network_shares_the_listening_socket(busybox):
    busybox.ok("run", "-d", "--name", "owner", "busybox", "sh", "-c", "nc -l -p 9999 & sleep 60")
    try:
        wait_for(lambda: ":9999" in busybox.ok("run", "--rm", "--net", "container:owner", "busybox", "netstat", "-ltn"),
                 what="nc to listen, seen from a container in the same network namespace")
        joined = busybox.ok("run", "--rm", "--net", "container:owner", "busybox", "sh", "-c",
                            "readlink /proc/self/ns/net; hostname").split()
        owner = busybox.ok("exec", "owner", "sh", "-c", "readlink /proc/self/ns/net; hostname").split()
        assert joined == owner
    finally:
        busybox("rm", "-f", "owner")


def test_container_network_needs_a_running_container(busybox):
    busybox.ok("create", "--name", "idle", "busybox", "true")
    result = busybox("run", "--rm", "--net", "container:idle", "busybox", "true")
    assert result.returncode == 125
    assert "cannot join network namespace of a non running container" in result.stderr
    missing = busybox("run", "--rm", "--net", "container:nosuch", "busybox", "true")
    assert missing.returncode == 125 and "No such container: nosuch" in missing.stderr
    assert len(busybox.container_ids()) == 1


def test_dns_options_and_extra_hosts(busybox):
    out = busybox.ok("run", "--rm", "--dns", "192.0.2.53", "--dns", "2001:db8::53", "--dns-search", "example.org",
                     "--dns-option", "ndots:2", "--add-host", "db:192.0.2.7", "--add-host", "v6:2001:db8::1",
                     "busybox", "sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts")
    resolv, hosts = out.split("---\n")
    assert resolv == "nameserver 192.0.2.53\nnameserver 2001:db8::53\nsearch example.org\noptions ndots:2\n"
    lines = hosts.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    # docker's order: the --add-host entries as given, then the container's own address last
    assert lines[-3:-1] == ["192.0.2.7\tdb", "2001:db8::1\tv6"]
    assert lines[-1].startswith(busybox.subnet.rsplit(".", 1)[0] + ".")


def test_default_resolv_conf_drops_loopback_nameservers(busybox):
    out = busybox.ok("run", "--rm", "busybox", "cat", "/etc/resolv.conf")
    assert "nameserver 127." not in out and "nameserver ::1" not in out
    assert out.startswith("nameserver ")


def test_bad_network_options_create_nothing(busybox):
    for args, message in (
        (["--dns", "notanip"], 'invalid argument "notanip" for "--dns" flag: notanip is not an ip address'),
        (["--add-host", "bad"], 'bad format for add-host: "bad"'),
        (["--add-host", "db:999.1.1.1"], 'invalid IP address in add-host: "999.1.1.1"'),
        (["--network", "bogus"], "network bogus not found"),
        (["--net", "container:nosuch"], "No such container: nosuch"),
        (["--link", "missing:db"], "could not get container for missing"),
    ):
        result = busybox("run", "--rm", *args, "busybox", "true")
        assert result.returncode == 125, args
        assert message in result.stderr, (args, result.stderr)
        assert result.stderr.count("\n") == 1
    assert busybox.container_ids() == []
    assert not os.path.exists(f"/sys/class/net/{busybox.bridge}")  # refused before anything was made


def test_network_ls_and_inspect(busybox):
    lines = busybox.ok("network", "ls").splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert sorted(line.split()[1:3] for line in lines[1:]) == [["bridge", "bridge"], ["host", "host"],
                                                                ["none", "null"]]
    assert busybox.ok("network", "inspect", "--format", "{{.Name}} {{.Driver}} {{.Scope}}", "none") == \
        "none null local\n"
    result = busybox("network", "inspect", "nope")
    assert result.returncode == 1 and "network nope not found" in result.stderr
