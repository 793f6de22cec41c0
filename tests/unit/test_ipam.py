"""Address pools and leases (no network traffic: pure files and arithmetic)."""

import ipaddress
import os
import threading

import pytest

from berth.network.ipam import DEFAULT_POOLS, Pool, choose_subnet, host_routes


def test_first_free_default_pool_like_docker():
    assert str(choose_subnet([])) == "172.17.0.0/16"
    taken = [ipaddress.ip_network("172.17.5.0/24"), ipaddress.ip_network("172.18.0.0/16")]
    assert str(choose_subnet(taken)) == "172.19.0.0/16"
    with pytest.raises(OSError, match="no default address pool is free"):
        choose_subnet([ipaddress.ip_network("0.0.0.0/1"), ipaddress.ip_network("128.0.0.0/1")])


def test_host_routes_parses_proc(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
    assert host_routes(str(table)) == [ipaddress.ip_network("192.168.1.0/24")]
    assert all(isinstance(n, ipaddress.IPv4Network) for n in host_routes())  # this host's table parses


def test_allocation_skips_network_gateway_and_broadcast(tmp_path):
    pool = Pool(str(tmp_path), "10.99.0.0/30")
    assert pool.gateway == "10.99.0.1"
    assert pool.allocate("a") == "10.99.0.2"
    with pytest.raises(OSError, match="no available IPv4 address"):
        pool.allocate("b")


def test_fixed_cidr_restricts_and_must_be_inside(tmp_path):
    pool = Pool(str(tmp_path), "192.168.0.128/25", "192.168.0.129", fixed_cidr="192.168.0.192/26")
    assert pool.allocate("a") == "192.168.0.193"
    with pytest.raises(ValueError, match="not inside the bridge subnet"):
        Pool(str(tmp_path), "192.168.0.128/25", fixed_cidr="10.0.0.0/24")


def test_release_only_by_the_holder(tmp_path):
    pool = Pool(str(tmp_path), "10.99.1.0/24")
    address = pool.allocate("holder")
    pool.release(address, "someone-else")
    assert pool.leases() == {address: "holder"}
    pool.release(address, "holder")
    assert pool.leases() == {}
    assert pool.allocate("next") == address


def test_concurrent_allocations_are_distinct(tmp_path):
    pool = Pool(str(tmp_path), "10.99.2.0/24")
    got = []
    lock = threading.Lock()

    def take(i):
        address = Pool(pool.directory, "10.99.2.0/24").allocate(f"c{i}")
        with lock:
            got.append(address)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 50
    assert len(os.listdir(pool.directory)) == 50
    assert DEFAULT_POOLS[0].prefixlen == 16


def test_lease_of_an_earlier_boot_is_reclaimed(tmp_path):
    pool = Pool(str(tmp_path), "10.9.0.0/29")
    first = pool.allocate("old")
    (tmp_path / first).write_text("old\nanother-boot-id")  # as if written before a reboot
    assert pool.leases() == {}
    assert pool.allocate("new") == first
    assert pool.leases() == {first: "new"}
    assert sorted(os.listdir(tmp_path)) == [first]


def test_claim_takes_one_address_once(tmp_path):
    pool = Pool(str(tmp_path / "leases"), "10.9.8.0/24", "10.9.8.1", "10.9.8.128/25")
    assert pool.claim("10.9.8.200", "a" * 64)
    assert not pool.claim("10.9.8.200", "b" * 64)  # taken
    assert not pool.claim("10.9.8.1", "b" * 64)  # the gateway
    assert not pool.claim("10.9.8.5", "b" * 64)  # outside the range
    assert not pool.claim("10.9.8.255", "b" * 64)  # the broadcast address
    assert pool.leases() == {"10.9.8.200": "a" * 64}
    assert pool.allocate("b" * 64) == "10.9.8.129"  # the range's own network address is skipped
    assert [n for n in os.listdir(tmp_path / "leases") if n.startswith(".")] == []  # no draft left
