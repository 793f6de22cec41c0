"""The rtnetlink client, exercised in network namespaces this test makes and throws away
(nothing is created in the host's namespace; addresses exist only inside ours)."""

import json
import os
import subprocess
import time

from berth.network.netlink import Netlink
from berth.runtime import syscalls as sc
from conftest import collect_child, wait_for


def in_private_netns(work) -> dict:
    """Run work() in a child in a fresh network namespace; its returned dict comes back."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        result = {}
        try:
            sc.unshare(sc.CLONE_NEWNET)
            result = work()
        except BaseException as err:  # report, never escape the child
            result = {"error": repr(err)}
        finally:
            os.write(write_fd, json.dumps(result).encode())
            os._exit(0)
    os.close(write_fd)
    return json.loads(collect_child(read_fd, pid)[0])


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def test_bridge_veth_address_route():
    def work():
        with Netlink() as nl:
            nl.set_link("lo", up=True)
            nl.add_bridge("tb0", mtu=1400)
            nl.add_address("tb0", "10.250.0.1", 24)
            nl.set_link("tb0", up=True)
            nl.add_veth("tv0", "tv0p", mtu=1400)
            nl.set_link("tv0", master="tb0", up=True)
            nl.set_link("tv0p", new_name="eth0", up=True)
            nl.add_address("eth0", "10.250.0.2", 24)
            nl.add_default_route("10.250.0.1", "eth0")
            try:
                nl.add_bridge("tb0")
                duplicate = None
            except OSError as err:
                duplicate = err.errno
        return {"links": ip("-o", "link"), "addrs": ip("-o", "-4", "addr"), "routes": ip("route"),
                "duplicate": duplicate}

    out = in_private_netns(work)
    assert "error" not in out, out
    assert "tb0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400" in out["links"]
    assert "master tb0" in next(line for line in out["links"].splitlines() if "tv0@" in line)
    assert "eth0@tv0" in out["links"]
    assert "inet 10.250.0.2/24 brd 10.250.0.255" in out["addrs"]
    assert "default via 10.250.0.1 dev eth0" in out["routes"]
    assert out["duplicate"] == 17  # EEXIST, reported as an OSError


def test_move_to_another_namespace_and_delete():
    def work():
        holder = os.fork()
        if holder == 0:  # a second namespace, held open by this process
            sc.unshare(sc.CLONE_NEWNET)
            time.sleep(30)
            os._exit(0)
        try:
            wait_for(lambda: os.readlink(f"/proc/{holder}/ns/net") != os.readlink("/proc/self/ns/net"),
                     what="the holder to unshare")
            with Netlink() as nl:
                nl.add_veth("mv0", "mv0p")
                fd = os.open(f"/proc/{holder}/ns/net", os.O_RDONLY)
                try:
                    nl.set_link("mv0p", netns_fd=fd)
                finally:
                    os.close(fd)
                with open(f"/proc/{holder}/net/dev") as f:
                    theirs = f.read()
                ours = ip("-o", "link")
                nl.delete_link("mv0")  # deleting one end of a veth removes its peer too
                with open(f"/proc/{holder}/net/dev") as f:
                    after = f.read()
            return {"theirs": theirs, "ours": ours, "after": after}
        finally:
            os.kill(holder, 9)  # our own child
            os.waitpid(holder, 0)

    out = in_private_netns(work)
    assert "error" not in out, out
    assert "mv0p" in out["theirs"]
    assert "mv0p" not in out["ours"] and "mv0@" in out["ours"]
    assert "mv0p" not in out["after"]
