"""User-defined networks without the kernel: the nft script of each kind of network, and the
docker CLI's checks of --subnet/--gateway/--ip-range."""

import pytest

from berth.engine.usernets import NetworkRequest, _ipam_configs
from berth.errors import InvalidArgument, NotImplementedYet
from berth.network.usernet import UserBridge, _network_rules, _remove_rules

NET_ID = "ab" * 32


def rules(**options) -> list[str]:
    bridge = UserBridge(NET_ID, "brtest", "10.9.0.0/24", "10.9.0.1", **options)
    return _network_rules("t", bridge, "berth0").splitlines()


def test_a_plain_network_is_isolated_and_masqueraded():
    lines = rules()
    chain = "nabababababab"
    assert f'add rule ip t from_{chain} oifname "brtest" accept' in lines
    assert f"add rule ip t from_{chain} oifname @bridges drop" in lines
    assert f"add rule ip t to_{chain} iifname @bridges drop" in lines
    assert f'add rule ip t nat_{chain} oifname != "brtest" masquerade' in lines
    assert 'add element ip t bridges { "berth0" }' in lines  # the default bridge is isolated too
    assert not any("noicc" in line for line in lines)


def test_internal_reaches_nothing_beyond_its_bridge():
    lines = rules(internal=True)
    assert "add rule ip t from_nabababababab drop" in lines
    assert 'add rule ip t to_nabababababab iifname != "brtest" drop' in lines
    assert not any("masquerade" in line for line in lines)


def test_icc_off_drops_within_the_network_at_both_layers():
    lines = rules(icc=False)
    assert 'add rule ip t from_nabababababab oifname "brtest" drop' in lines
    assert "add element bridge t noicc { 10.9.0.0/24 }" in lines


def test_removal_deletes_what_was_added():
    script = _remove_rules("t", UserBridge(NET_ID, "brtest", "10.9.0.0/24", "10.9.0.1"))
    for kind in ("from", "to", "nat"):
        assert f"delete chain ip t {kind}_nabababababab" in script
    assert 'delete element ip t from_net { "brtest" }' in script


def test_bridge_names_are_checked():
    with pytest.raises(InvalidArgument):
        UserBridge(NET_ID, 'x" ; flush ruleset', "10.9.0.0/24", "10.9.0.1")
    with pytest.raises(InvalidArgument):
        UserBridge(NET_ID, "a-name-that-is-too-long", "10.9.0.0/24", "10.9.0.1")


@pytest.mark.parametrize(("fields", "message"), [
    ({"gateways": ["10.9.0.1"]}, "every ip-range or gateway must have a corresponding subnet"),
    ({"subnets": ["10.9.0.0/24"], "gateways": ["10.8.0.1"]}, "no matching subnet for gateway 10.8.0.1"),
    ({"subnets": ["10.9.0.0/24"], "ip_ranges": ["10.9.1.0/25"]}, "no matching subnet for range 10.9.1.0/25"),
    ({"subnets": ["10.9.0.0"]}, "invalid CIDR address: 10.9.0.0"),
    ({"subnets": ["10.9.0.0/24"], "gateways": ["nope"]}, "invalid gateway address: nope"),
])
def test_ipam_checks(fields, message):
    with pytest.raises(InvalidArgument, match=message):
        _ipam_configs(NetworkRequest("n", **fields))


def test_ipam_config_as_docker_shows_it():
    assert _ipam_configs(NetworkRequest("n", subnets=["10.9.0.7/24"])) == [{"Subnet": "10.9.0.0/24",
                                                                              "Gateway": "10.9.0.1"}]
    assert _ipam_configs(NetworkRequest("n", subnets=["10.9.0.0/24"], ip_ranges=["10.9.0.128/25"],
                                        gateways=["10.9.0.254"])) == [
        {"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.128/25", "Gateway": "10.9.0.254"}]
    with pytest.raises(NotImplementedYet):
        _ipam_configs(NetworkRequest("n", subnets=["fd00::/64"]))
