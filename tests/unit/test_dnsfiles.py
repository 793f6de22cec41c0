"""The container's /etc/hosts and /etc/resolv.conf content."""

from berth.engine.dnsfiles import hosts, resolv_conf


def test_resolv_conf_drops_loopback_nameservers():
    host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"
    assert resolv_conf(host) == "nameserver 10.0.0.2\nsearch corp.example\noptions edns0\n"


def test_resolv_conf_falls_back_to_dockers_defaults_as_content():
    assert resolv_conf("nameserver 127.0.0.1\n") == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"


def test_resolv_conf_overrides():
    out = resolv_conf("nameserver 10.0.0.2\n", dns=["192.0.2.1"], search=["a.example"], options=["ndots:2"])
    assert out == "nameserver 192.0.2.1\nsearch a.example\noptions ndots:2\n"


def test_hosts_order_is_current_dockers():
    text = hosts([("db", "192.0.2.5")], own=("172.17.0.2", "abc123"))
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1\tlocalhost"
    assert lines[-2:] == ["192.0.2.5\tdb", "172.17.0.2\tabc123"]


def test_resolv_conf_on_a_user_network_names_the_embedded_resolver():
    host = "nameserver 127.0.0.53\nsearch corp.test\noptions edns0\n"
    text = resolv_conf(host, internal_resolver=True)
    assert text == ("nameserver 127.0.0.11\nsearch corp.test\noptions ndots:0 edns0\n\n"
                    "# ExtServers: [host(127.0.0.53)]\n")
    text = resolv_conf(host, dns=["10.0.0.53"], options=["ndots:2"], internal_resolver=True)
    assert text == "nameserver 127.0.0.11\nsearch corp.test\noptions ndots:2\n\n# ExtServers: [10.0.0.53]\n"
    assert "# ExtServers: [8.8.8.8 8.8.4.4]" in resolv_conf("", internal_resolver=True)
