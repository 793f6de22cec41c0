"""The embedded resolver's pure parts: its table from container records (what a container sees,
what is owned, what a hostile or broken record does), reverse names, replies made without
parsing, truncation; and the upstreams a container's queries go to."""

import json
import os

from dnslib import EDNS0, RR, A, DNSRecord

from berth.engine.dnsfiles import external_servers
from berth.network.resolver import Table, _error_reply, _fit, _question, ptr_address


def write_record(root: str, name: str, networks: dict, running: bool = True) -> str:
    container_id = os.urandom(32).hex()
    directory = os.path.join(root, "containers", container_id)
    os.makedirs(directory)
    record = {"Id": container_id, "Name": "/" + name, "State": {"Running": running, "Pid": os.getpid()},
              "NetworkSettings": {"Networks": {
                  network: {"NetworkID": network_id, "IPAddress": ip, "Aliases": aliases,
                            "DNSNames": [name, *aliases, container_id[:12]] if running else None}
                  for network, (network_id, ip, aliases) in networks.items()}}}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(record, f)
    return container_id


def test_a_container_sees_only_its_networks(tmp_path):
    root = str(tmp_path)
    asker = write_record(root, "asker", {"front": ("f" * 64, "10.1.0.2", [])})
    web = write_record(root, "web", {"front": ("f" * 64, "10.1.0.3", ["www"]), "back": ("b" * 64, "10.2.0.3", [])})
    write_record(root, "db", {"back": ("b" * 64, "10.2.0.4", ["store"])})
    write_record(root, "gone", {"front": ("f" * 64, "", ["old"])}, running=False)
    table = Table(root)
    table.rebuild()
    assert table.resolve(asker, "web") == (["10.1.0.3"], [])
    assert table.resolve(asker, "www") == (["10.1.0.3"], [])
    assert table.resolve(asker, web[:12]) == (["10.1.0.3"], [])
    assert table.resolve(asker, "web.front") == (["10.1.0.3"], [])
    assert table.resolve(asker, "db") is None and table.resolve(asker, "db.back") is None
    assert table.resolve(web, "store") == (["10.2.0.4"], [])
    assert table.reverse(asker, "10.1.0.3") == "web.front"
    assert table.reverse(asker, "10.2.0.4") is None
    # ours, so never forwarded: names, aliases, short IDs, addresses, NAME.NETWORK, stopped ones
    for name in ("db", "store", "gone", "old", "10.2.0.4", "anything.back", web[:12]):
        assert table.owns(name), name
    assert not table.owns("example.org") and not table.owns("web.example")


def test_records_written_since_are_seen_before_the_next_answer(tmp_path):
    root = str(tmp_path)
    asker = write_record(root, "asker", {"net": ("n" * 64, "10.1.0.2", [])})
    table = Table(root)
    table.fresh()
    assert table.resolve(asker, "late") is None
    write_record(root, "late", {"net": ("n" * 64, "10.1.0.9", [])})
    table.fresh()  # no refresh was asked for: the new record's directory told
    assert table.resolve(asker, "late") == (["10.1.0.9"], [])
    builds = table.builds
    table.fresh()
    assert table.builds == builds  # nothing changed: nothing re-read


def test_hostile_and_broken_records_name_nothing(tmp_path):
    root = str(tmp_path)
    asker = write_record(root, "asker", {"net": ("n" * 64, "10.1.0.2", [])})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text(json.dumps(
        {"Id": "x", "Name": "/evil", "State": {"Running": True, "Pid": os.getpid()},
         "NetworkSettings": {"Networks": {"net": {"NetworkID": "n" * 64, "IPAddress": "10.1.0.66",
                                                  "DNSNames": ["evil"]}}}}))
    os.symlink(str(elsewhere), os.path.join(root, "containers", "e" * 64))  # a directory that is a link
    broken = os.path.join(root, "containers", "b" * 64)
    os.makedirs(broken)
    with open(os.path.join(broken, "config.json"), "w") as f:
        json.dump({"Name": 5, "NetworkSettings": {"Networks": {"net": {"NetworkID": "n" * 64, "DNSNames": 7}}}}, f)
    fifo = os.path.join(root, "containers", "f" * 64)
    os.makedirs(fifo)
    os.mkfifo(os.path.join(fifo, "config.json"))  # never opened for reading: it would block
    table = Table(root)
    table.rebuild()
    assert table.resolve(asker, "evil") is None and table.resolve(asker, "asker") == (["10.1.0.2"], [])


def test_reverse_names():
    assert ptr_address([b"4", b"3", b"2", b"10", b"in-addr", b"arpa"]) == "10.2.3.4"
    assert ptr_address([b"999", b"3", b"2", b"10", b"in-addr", b"arpa"]) is None
    nibbles = [bytes([c]) for c in reversed(b"fd000000000000000000000000000001")]
    assert ptr_address([*nibbles, b"ip6", b"arpa"]) == "fd00::1"
    assert ptr_address([*nibbles[:-1], b"x", b"ip6", b"arpa"]) is None
    assert ptr_address([b"example", b"org"]) is None


def test_error_replies_need_no_parse():
    query = DNSRecord.question("web", "A").pack()
    reply = _error_reply(query, 2)
    parsed = DNSRecord.parse(reply)
    assert parsed.header.id == DNSRecord.parse(query).header.id and parsed.header.rcode == 2 and parsed.header.qr
    assert str(parsed.q.qname) == "web."
    for garbage in (query[:12] + b"\xc0\x0c", query[:12] + b"\x3fabc", query[:12]):
        assert _question(garbage) == b""
        assert len(_error_reply(garbage, 1)) == 12


def test_replies_fit_what_the_client_takes():
    query = DNSRecord.question("many", "A")
    reply = query.reply()
    for n in range(100):
        reply.add_answer(RR("many", rdata=A(f"10.0.{n // 250}.{n % 250 + 1}")))
    packed = _fit(reply, query, tcp=False)
    assert len(packed) <= 512 and DNSRecord.parse(packed).header.tc
    edns = DNSRecord.question("many", "A")
    edns.add_ar(EDNS0(udp_len=4096))
    full = query.reply()
    for n in range(100):
        full.add_answer(RR("many", rdata=A(f"10.0.{n // 250}.{n % 250 + 1}")))
    assert len(DNSRecord.parse(_fit(full, edns, tcp=False)).rr) == 100


def test_upstreams_as_docker_chooses_them():
    host = "nameserver 127.0.0.53\nnameserver 10.9.9.9\n"
    assert external_servers(host, ["10.0.0.2"]) == [("10.0.0.2", False)]
    assert external_servers(host) == [("127.0.0.53", True), ("10.9.9.9", False)]
    assert external_servers("") == [("8.8.8.8", False), ("8.8.4.4", False)]
