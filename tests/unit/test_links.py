"""Legacy links: --link parsing, the environment docker gives a linked container, its hosts line."""

import pytest

from berth.errors import InvalidArgument
from berth.network.links import hosts_line, link_env, parse_links


def test_parse_links():
    assert parse_links([]) == []
    assert parse_links(["db", "db:database", "/db:/web/data"]) == [("db", "db"), ("db", "database"), ("db", "data")]
    # docker's CLI lets these through; the engine then finds no such container
    assert parse_links([":alias", "db:"]) == [("", "alias"), ("db", "")]


@pytest.mark.parametrize("value, message", [
    ("", 'invalid argument "" for "--link" flag: empty string specified for links'),
    ("a:b:c", 'invalid argument "a:b:c" for "--link" flag: bad format for links: a:b:c'),
    ('a"b:c:d', 'invalid argument "a\\"b:c:d" for "--link" flag: bad format for links: a"b:c:d'),
])
def test_parse_links_errors_are_dockers(value, message):
    with pytest.raises(InvalidArgument) as info:
        parse_links(["ok", value])
    assert str(info.value) == message
    assert info.value.kind == "usage"  # docker's CLI cannot parse the flag: 125


def test_link_env_for_two_exposed_ports():
    # `docker run --name b --link a:alias ...` where a exposes 80/tcp and 443/tcp
    env = link_env("b", "alias", "172.17.0.2", {"443/tcp": {}, "80/tcp": {}},
                   ["PATH=/usr/local/bin:/usr/bin", "HOME=/root", "NGINX_VERSION=1.25.3", "HOSTNAME=a1"])
    assert env == [
        "ALIAS_PORT=tcp://172.17.0.2:80",
        "ALIAS_PORT_80_TCP=tcp://172.17.0.2:80",
        "ALIAS_PORT_80_TCP_ADDR=172.17.0.2",
        "ALIAS_PORT_80_TCP_PORT=80",
        "ALIAS_PORT_80_TCP_PROTO=tcp",
        "ALIAS_PORT_443_TCP=tcp://172.17.0.2:443",
        "ALIAS_PORT_443_TCP_ADDR=172.17.0.2",
        "ALIAS_PORT_443_TCP_PORT=443",
        "ALIAS_PORT_443_TCP_PROTO=tcp",
        "ALIAS_NAME=/b/alias",
        "ALIAS_ENV_NGINX_VERSION=1.25.3",
        "ALIAS_ENV_HOSTNAME=a1",  # docker skips only HOME and PATH
    ]


def test_link_env_ranges_and_proto_order():
    env = link_env("web", "db-1", "10.0.0.3",
                   ["5001/udp", "7002/tcp", "9/sctp", "7000/tcp", "5000/udp", "7001/tcp", "6379/tcp"], [])
    per_port = [e.split("=")[0] for e in env if e.split("=")[0].endswith(("_TCP", "_UDP", "_SCTP"))]
    # tcp first, then the other protos by name; numbers ascending within a proto
    assert per_port == ["DB_1_PORT_6379_TCP", "DB_1_PORT_7000_TCP", "DB_1_PORT_7001_TCP", "DB_1_PORT_7002_TCP",
                        "DB_1_PORT_9_SCTP", "DB_1_PORT_5000_UDP", "DB_1_PORT_5001_UDP"]
    assert env[0] == "DB_1_PORT=tcp://10.0.0.3:6379"
    # a run is reported when the next port breaks it (so after that port's variables), or at the end
    i = env.index("DB_1_PORT_9_SCTP_PROTO=sctp")
    assert env[i + 1:i + 5] == [
        "DB_1_PORT_7000_TCP_START=tcp://10.0.0.3:7000",
        "DB_1_PORT_7000_TCP_PORT_START=7000",
        "DB_1_PORT_7000_TCP_END=tcp://10.0.0.3:7002",
        "DB_1_PORT_7000_TCP_PORT_END=7002",
    ]
    assert env[-5:] == [
        "DB_1_PORT_5000_UDP_START=udp://10.0.0.3:5000",
        "DB_1_PORT_5000_UDP_PORT_START=5000",
        "DB_1_PORT_5000_UDP_END=udp://10.0.0.3:5001",
        "DB_1_PORT_5000_UDP_PORT_END=5001",
        "DB_1_NAME=/web/db-1",
    ]
    assert len(env) == 1 + 7 * 4 + 2 * 4 + 1
    assert not any("_6379_TCP_START" in e or "_9_SCTP_START" in e for e in env)


def test_link_env_without_ports_and_odd_env():
    assert link_env("/p", "My-DB", "10.0.0.4", [], ["A=b=c", "NOEQUALS", "EMPTY=", "HOME=/x"]) == [
        "MY_DB_NAME=/p/My-DB",
        "MY_DB_ENV_A=b=c",
        "MY_DB_ENV_EMPTY=",
    ]
    assert link_env("p", "a", "10.0.0.4", {}, None) == ["A_NAME=/p/a"]


def test_link_env_breaks_runs_on_gaps_and_proto_changes():
    env = link_env("p", "a", "1.2.3.4", ["80/tcp", "81/tcp", "83/tcp", "84/udp"], [])
    assert [e for e in env if "_START=" in e] == ["A_PORT_80_TCP_START=tcp://1.2.3.4:80", "A_PORT_80_TCP_PORT_START=80"]
    assert "A_PORT_80_TCP_END=tcp://1.2.3.4:81" in env


def test_hosts_line():
    assert hosts_line("db", "4f1c2a9e7b3d", "postgres", "172.17.0.2") == "172.17.0.2\tdb 4f1c2a9e7b3d postgres"
    # the name is left out when it is the alias
    assert hosts_line("postgres", "4f1c2a9e7b3d", "/postgres", "172.17.0.2") == "172.17.0.2\tpostgres 4f1c2a9e7b3d"
