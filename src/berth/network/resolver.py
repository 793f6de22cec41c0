"""The embedded DNS resolver of a berth root (docker's 127.0.0.11): one process serves every
running container on a user network, each through a UDP and a TCP socket bound to
127.0.0.11:53 inside that container's network namespace, so it knows which container asks.

Names are answered from the container records (<root>/containers/*/config.json): on each
network a running container's DNSNames (name, aliases, short ID) give its addresses (A, and
AAAA when it has IPv6), and its addresses give `name.network` back (PTR), as docker's. A
container sees only the networks it is on. Other names go to its upstream servers, as
docker's resolver forwards them; names of this root's containers that it cannot see are
NXDOMAIN, never forwarded.

Started by engine.dns (network.resolver_control.spawn) with its control socket as fd 3;
it ends when it serves no container. Everything a container sends is hostile: a packet that
does not parse is answered FORMERR or dropped, never ends the resolver."""

import errno
import fcntl
import os
import random
import select
import socket
import sys
import time

from berth.fastjson import dumps, loads
from berth.fs import DIR_FLAGS, open_regular
from berth.network.resolver_control import COMM, MAX_MESSAGE, Files

LISTEN_ADDRESS = "127.0.0.11"  # docker's
TTL = 600  # docker's respTTL
MAX_UPSTREAMS = 3  # docker's maxExtDNS
UPSTREAM_TIMEOUT = 4.0  # docker's extIOTimeout: per upstream server tried
MAX_PENDING = 100  # forwarded queries in flight per container (docker's maxConcurrent)
MAX_TCP_CLIENTS = 32  # TCP connections per container; the oldest makes room for a new one
TCP_IDLE = 10.0  # seconds a TCP client may stay silent
MAX_TCP_BACKLOG = 1 << 18  # bytes of answers a TCP client may leave unread
IDLE_EXIT = 2.0  # seconds with nothing to serve before the resolver ends (a restart keeps it)
MAX_RECORD = 8 << 20  # a container record bigger than this is not one of ours
BATCH = 32  # datagrams or connections taken per wake-up: one busy container cannot starve the rest
_DEFAULT_UDP = 512
_FD_SIZE = 4
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT
# DNS header bits and codes (RFC 1035 4.1.1)
_QR, _AA, _TC = 0x8000, 0x0400, 0x0200
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
A, PTR, MX, AAAA, OPT = 1, 12, 15, 28, 41


def main() -> None:
    """The resolver process: its arguments end with the root and run-root; the control socket is fd 3."""
    from berth.runtime import syscalls as sc  # lazy: only the resolver process

    sc.prctl(sc.PR_SET_NAME, COMM.encode())  # what ps -o comm, top and the starter's check see
    os.umask(0o077)
    root, run_root = sys.argv[-2:]
    Resolver(root, Files(run_root), socket.socket(fileno=3)).run()


# -- the table ------------------------------------------------------------------------------------

class Table:
    """Names and addresses per network, from the records of the root's containers. Rebuilt
    when told, and before a query is answered once a record was written since the last build
    (inotify: a record is replaced by a rename into its directory, queued by the kernel before
    the writer goes on, so no answer is older than a record written before the query was
    sent). A record is re-read only when it changed (a new inode, size or mtime)."""

    def __init__(self, root: str):
        from berth.runtime import syscalls as sc  # lazy: only the resolver process

        self.sc = sc
        self.containers = os.path.join(root, "containers")
        self.cache = {}  # container ID -> ((ino, size, mtime_ns), record)
        self.names = {}  # network ID -> {name: ([IPv4], [IPv6])}
        self.addresses = {}  # network ID -> {address: "name.network"}
        self.network_names = {}  # network name (lower case) -> network ID
        self.owned = set()  # every name and address of every container: never forwarded
        self.inotify = sc.inotify_init1(sc.IN_NONBLOCK | sc.IN_CLOEXEC)
        self.watched = set()  # the directories watched: containers/ ("") and each container's
        self.dirty = True
        self.builds = 0

    def fresh(self) -> None:
        """Rebuild if a record was written (or a container made or removed) since the last build."""
        try:
            while os.read(self.inotify, 65536):
                self.dirty = True
        except BlockingIOError:
            pass
        if self.dirty:
            self.rebuild()

    def _watch(self, ids) -> None:
        sc = self.sc
        for key in ("", *ids):
            if key in self.watched:
                continue
            mask = sc.IN_MOVED_TO | sc.IN_ONLYDIR | sc.IN_DONT_FOLLOW
            if not key:
                mask |= sc.IN_CREATE | sc.IN_DELETE | sc.IN_MOVED_FROM
            try:
                sc.inotify_add_watch(self.inotify, os.path.join(self.containers, key), mask)
            except OSError:
                continue  # gone meanwhile, or no containers/ yet: looked at again next build
            self.watched.add(key)
        self.watched &= {"", *ids}  # a removed directory's watch went with it

    def rebuild(self) -> None:
        self.builds += 1
        self.dirty = not os.path.isdir(self.containers)  # nothing to watch yet: look every time
        records = self._read_records()
        self._watch(list(self.cache))
        names, addresses, network_names, owned = {}, {}, {}, set()
        for container_id, record in records.items():
            try:
                self._add(record, container_id, names, addresses, network_names, owned)
            except (AttributeError, TypeError, ValueError, KeyError):
                continue  # not a record as berth writes them: it names nothing
        self.names, self.addresses, self.network_names, self.owned = names, addresses, network_names, owned

    def _read_records(self) -> dict:
        """The records, read fd-relative with no link followed; one that cannot be read or
        parsed is skipped."""
        try:
            top = os.open(self.containers, DIR_FLAGS)
        except OSError:
            self.cache = {}
            return {}
        cache = {}
        try:
            for name in os.listdir(top):
                if len(name) != 64 or name.strip("0123456789abcdef"):
                    continue
                try:
                    directory = os.open(name, DIR_FLAGS, dir_fd=top)
                except OSError:
                    continue
                try:
                    entry = self._read(name, directory)
                finally:
                    os.close(directory)
                if entry is not None:
                    cache[name] = entry
        finally:
            os.close(top)
        self.cache = cache
        return {key: record for key, (_, record) in cache.items()}

    def _read(self, container_id: str, directory: int):
        try:
            opened = open_regular("config.json", directory)
        except OSError:
            return None
        if opened is None:
            return None
        fd, st = opened
        try:
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            known = self.cache.get(container_id)
            if known is not None and known[0] == stamp:
                return known
            if st.st_size > MAX_RECORD:
                return None
            data = os.read(fd, st.st_size + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        try:
            record = loads(data)
        except ValueError:
            return None
        return (stamp, record) if isinstance(record, dict) else None

    def _add(self, record: dict, container_id: str, names: dict, addresses: dict, network_names: dict,
             owned: set) -> None:
        name = str(record.get("Name") or "").lstrip("/").lower()
        owned.update(n for n in (name, container_id[:12]) if n)
        state = record.get("State") or {}
        running = bool(state.get("Running")) and _alive(state.get("Pid"))
        for network, endpoint in ((record.get("NetworkSettings") or {}).get("Networks") or {}).items():
            network_id = endpoint.get("NetworkID") or ""
            if not network_id or not isinstance(network, str):
                continue
            network_names.setdefault(network.lower(), network_id)
            dns_names = [str(n).lower() for n in (endpoint.get("DNSNames") or []) + (endpoint.get("Aliases") or [])]
            ipv4 = _normal_address(endpoint.get("IPAddress"))
            ipv6 = _normal_address(endpoint.get("GlobalIPv6Address"))
            owned.update(dns_names)
            owned.update(a for a in (ipv4, ipv6) if a)
            if not running:
                continue
            table = names.setdefault(network_id, {})
            for dns_name in dict.fromkeys(dns_names):
                v4, v6 = table.setdefault(dns_name, ([], []))
                if ipv4:
                    v4.append(ipv4)
                if ipv6:
                    v6.append(ipv6)
            reverse = addresses.setdefault(network_id, {})
            for address in (ipv4, ipv6):
                if address and name:
                    reverse.setdefault(address, f"{name}.{network}")

    def networks_of(self, container_id: str) -> list:
        """[(network name, network ID)] of a served container, in its record's order."""
        entry = self.cache.get(container_id)
        if entry is None:
            return []
        networks = (entry[1].get("NetworkSettings") or {}).get("Networks") or {}
        return [(name, endpoint.get("NetworkID")) for name, endpoint in networks.items()
                if isinstance(endpoint, dict) and endpoint.get("NetworkID")]

    def resolve(self, container_id: str, name: str):
        """([IPv4], [IPv6]) of `name` (lower case, no trailing dot) as container `container_id`
        sees it: in the first of its networks that has it, else as `name.network` (docker's
        sandbox tries every split of a dotted name), else None."""
        networks = self.networks_of(container_id)
        for _, network_id in networks:
            found = self.names.get(network_id, {}).get(name)
            if found:
                return found
        dot = name.find(".")
        while dot != -1:
            prefix, suffix = name[:dot], name[dot + 1:]
            for network, network_id in networks:
                if network.lower() == suffix:
                    found = self.names.get(network_id, {}).get(prefix)
                    if found:
                        return found
            dot = name.find(".", dot + 1)
        return None

    def reverse(self, container_id: str, address: str) -> str | None:
        for _, network_id in self.networks_of(container_id):
            found = self.addresses.get(network_id, {}).get(address)
            if found:
                return found
        return None

    def owns(self, name: str) -> bool:
        """Whether `name` is one of this root's: a container's name, alias or short ID, an
        address of one, or NAME.NETWORK for one of its networks."""
        if name in self.owned:
            return True
        dot = name.find(".")
        while dot != -1:
            if name[dot + 1:] in self.network_names:
                return True
            dot = name.find(".", dot + 1)
        return False


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _normal_address(text) -> str:
    """An address as inet_ntop writes it ("" if it is none): the form PTR queries are matched in."""
    if not isinstance(text, str) or not text:
        return ""
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except (OSError, ValueError):
        return ""


def ptr_address(labels: list) -> str | None:
    """The address a reverse name (lower-case labels) asks about, or None if it is not one."""
    if labels[-2:] == [b"in-addr", b"arpa"] and len(labels) == 6:
        text = ".".join(label.decode("ascii", "replace") for label in reversed(labels[:4]))
        return _normal_address(text) or None
    if labels[-2:] == [b"ip6", b"arpa"] and len(labels) == 34:
        nibbles = b"".join(reversed(labels[:32]))
        try:
            return socket.inet_ntop(socket.AF_INET6, bytes.fromhex(nibbles.decode("ascii")))
        except (ValueError, UnicodeDecodeError):
            return None
    return None


# -- one served container -------------------------------------------------------------------------

class Served:
    """A container the resolver serves: its process (pidfd), its network namespace (for the
    sockets made there), its listeners, its upstreams, and its queries in flight."""

    __slots__ = ("container_id", "pidfd", "netns", "udp", "tcp", "upstreams", "forwarders", "pending",
                 "clients", "ndots_set")

    def __init__(self, container_id: str, pidfd: int, netns: int, upstreams: list):
        self.container_id = container_id
        self.pidfd, self.netns = pidfd, netns
        self.udp = self.tcp = None
        self.upstreams = upstreams[:MAX_UPSTREAMS]  # [(address, from the host's namespace)]
        self.forwarders = {}  # address family -> UDP socket made in the container's namespace
        self.pending = 0
        self.clients = {}  # fd -> _TcpClient, oldest first
        self.ndots_set = False  # its resolv.conf sets ndots > 0: single-label names stay here


class _Pending:
    """A forwarded query: who asked, and which upstream we wait for. A query that came over
    TCP goes over TCP (docker's: a truncated answer is not the end of it), a connection of
    its own per upstream tried."""

    __slots__ = ("served", "query", "reply_to", "tcp", "attempt", "sock", "server", "deadline", "query_id",
                 "inbox")

    def __init__(self, served: Served, query: bytes, reply_to, tcp: bool):
        self.served, self.query, self.reply_to, self.tcp = served, query, reply_to, tcp
        self.attempt = -1
        self.sock = self.server = None
        self.deadline = 0.0
        self.query_id = 0
        self.inbox = None  # a TCP upstream's answer so far (None: the query is not sent yet)


class _TcpClient:
    __slots__ = ("sock", "served", "inbox", "outbox", "last")

    def __init__(self, sock, served: Served):
        self.sock, self.served = sock, served
        self.inbox = b""
        self.outbox = b""
        self.last = time.monotonic()


# -- the process ----------------------------------------------------------------------------------

class Resolver:
    def __init__(self, root: str, files: Files, control):
        import dnslib  # lazy: only the resolver process pays for the DNS library

        self.dns = dnslib
        self.files = files
        self.table = Table(root)
        self.control = control
        self.control.setblocking(False)
        self.epoll = select.epoll()
        self.handlers = {}  # fd -> callable(events)
        self.dropped = set()
        self.served = {}  # container ID -> Served
        self.translate = []  # container IDs served on 127.0.0.11:53 itself, to move behind NAT
        self.pending = {}  # upstream query ID -> _Pending, by deadline
        self.host_forwarders = {}  # family -> UDP socket in our own namespace (host loopback servers)
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.idle_since = time.monotonic()
        self.exit_retry = 0.0
        self.stats = {"queries": 0, "answered": 0, "forwarded": 0, "malformed": 0}
        self.random = random.SystemRandom()
        self.watch(control.fileno(), self._on_control)

    def watch(self, fd: int, handler, mask: int = _IN) -> None:
        self.epoll.register(fd, mask)
        self.handlers[fd] = handler

    def forget(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            self.epoll.unregister(fd)
            self.dropped.add(fd)

    def run(self) -> None:
        while True:
            now = time.monotonic()
            wake = self._next_wake(now)
            for fd, events in self.epoll.poll(-1 if wake is None else max(0.0, wake - now)):
                handler = None if fd in self.dropped else self.handlers.get(fd)
                if handler is None:
                    continue
                try:
                    handler(events)
                except Exception:  # noqa: BLE001 - one bad event (a hostile packet) never ends the resolver
                    self.stats["malformed"] += 1
            self.dropped.clear()
            self._expire(time.monotonic())

    def _next_wake(self, now: float):
        wakes = []
        if self.pending:
            wakes.append(next(iter(self.pending.values())).deadline)
        if any(served.clients for served in self.served.values()):
            wakes.append(now + 1.0)
        if not self.served:
            wakes.append(max(self.exit_retry, self.idle_since + IDLE_EXIT))
        return min(wakes) if wakes else None

    def _expire(self, now: float) -> None:
        while self.pending:
            query_id, pending = next(iter(self.pending.items()))
            if pending.deadline > now:
                break
            del self.pending[query_id]
            self._try_next(pending, None)
        for served in list(self.served.values()):
            for client in [c for c in served.clients.values() if now - c.last > TCP_IDLE]:
                self._close_client(client)
        if not self.served and now >= max(self.exit_retry, self.idle_since + IDLE_EXIT):
            self._try_exit()

    # -- control ---------------------------------------------------------------------------------
    def _on_control(self, events: int) -> None:
        for _ in range(BATCH):
            try:
                conn, _ = self.control.accept()
            except BlockingIOError:
                return
            conn.setblocking(False)
            self.watch(conn.fileno(), lambda events, conn=conn: self._on_request(conn))

    def _on_request(self, conn) -> None:
        self.forget(conn.fileno())
        fds = []
        try:
            try:
                data, ancillary, _, _ = conn.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * _FD_SIZE))
            except BlockingIOError:
                return
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds += [int.from_bytes(payload[i:i + _FD_SIZE], sys.byteorder)
                            for i in range(0, len(payload) - len(payload) % _FD_SIZE, _FD_SIZE)]
            try:
                reply = self._handle(loads(data), fds)
            except Exception as err:  # noqa: BLE001 - told to the requester
                reply = {"Error": str(err) or type(err).__name__}
            try:
                conn.send(dumps(reply).encode())
            except OSError:
                pass
        finally:
            for fd in fds:  # what a request kept (serve) it has dup'ed
                os.close(fd)
            conn.close()
        self._translate()
        if not self.served:
            self.idle_since = time.monotonic()

    def _handle(self, message: dict, fds: list) -> dict:
        op = message.get("Op")
        if op == "serve":
            if len(fds) != 2:
                raise ValueError("serve needs the container's pidfd and network namespace")
            self._serve(str(message["Id"]), fds[0], fds[1], message.get("Upstreams") or [],
                        bool(message.get("NdotsSet")))
        elif op == "forget":
            self._drop(str(message["Id"]))
        elif op != "refresh" and op != "status":
            raise ValueError(f"unknown request {op!r}")
        if op != "status":
            self.table.rebuild()
        return {"Pid": os.getpid(), "Served": sorted(self.served), "Pending": len(self.pending), **self.stats,
                "Rebuilds": self.table.builds}

    def _serve(self, container_id: str, pidfd: int, netns: int, upstreams: list, ndots_set: bool) -> None:
        if _same_file(self.home, netns):  # never a listener and a NAT rule in the host's namespace
            raise ValueError("the container has no network namespace of its own")
        upstreams = [(str(address), bool(host)) for address, host in upstreams]
        known = self.served.get(container_id)
        if known is not None and _same_file(known.netns, netns):  # connected to one more network
            known.upstreams, known.ndots_set = upstreams[:MAX_UPSTREAMS], ndots_set
            return
        self._drop(container_id)  # a restart: its old namespace is gone
        served = Served(container_id, os.dup(pidfd), os.dup(netns), upstreams)
        served.ndots_set = ndots_set
        try:
            try:
                served.udp, served.tcp = self._in_namespace(served.netns, lambda: _listeners(53))
            except OSError as err:
                if err.errno != errno.EADDRINUSE:
                    raise
                # the container's own DNS server has *:53 (we serve it again): NAT at once
                served.udp, served.tcp = self._in_namespace(served.netns, lambda: _listeners(0))
        except BaseException:
            os.close(served.pidfd)
            os.close(served.netns)
            raise
        self.served[container_id] = served
        self.watch(served.pidfd, lambda events: self._drop(container_id, ended=True))
        self._watch_listeners(served)
        self.translate.append(container_id)

    def _watch_listeners(self, served: Served) -> None:
        udp, tcp = served.udp, served.tcp
        self.watch(udp.fileno(), lambda events: self._on_udp(served) if served.udp is udp else None)
        self.watch(tcp.fileno(), lambda events: self._on_accept(served) if served.tcp is tcp else None)

    def _translate(self) -> None:
        """After the serve is answered (off the start's path: the NAT setup of a fresh
        namespace costs ~12 ms): move to ports of our own, the container's 127.0.0.11:53
        translated to them as docker's is, so the container may run a DNS server of its own
        on *:53. What the direct sockets hold is answered first; without NAT they stay."""
        while self.translate:
            served = self.served.get(self.translate.pop(0))
            if served is None:
                continue
            try:
                udp, tcp = self._in_namespace(served.netns, lambda: _listeners(0))
            except OSError:
                continue  # no NAT here: 127.0.0.11:53 stays ours
            self._on_udp(served)
            self._on_accept(served)
            for sock in (served.udp, served.tcp):
                self.forget(sock.fileno())
                sock.close()
            served.udp, served.tcp = udp, tcp
            self._watch_listeners(served)

    def _drop(self, container_id: str, ended: bool = False) -> None:
        """Stop serving a container: its sockets hold its network namespace (and so its veth)
        alive, they go as soon as it ends."""
        served = self.served.pop(container_id, None)
        if served is None:
            return
        for query_id in [k for k, p in self.pending.items() if p.served is served]:
            self._close_upstream(self.pending.pop(query_id))
        for client in list(served.clients.values()):
            self._close_client(client)
        for sock in (served.udp, served.tcp, *served.forwarders.values()):
            if sock is not None:
                self.forget(sock.fileno())
                sock.close()
        self.forget(served.pidfd)
        os.close(served.pidfd)
        os.close(served.netns)
        if ended:
            self.table.rebuild()
        if not self.served:
            self.idle_since = time.monotonic()

    def _in_namespace(self, netns: int, make):
        """make() run in the network namespace `netns`: sockets made there stay there."""
        from berth.runtime import syscalls as sc  # lazy: loaded once, at the first serve

        sc.setns(netns, sc.CLONE_NEWNET)
        try:
            return make()
        finally:
            try:
                sc.setns(self.home, sc.CLONE_NEWNET)
            except OSError:  # never serve on from a container's namespace
                os._exit(1)

    def _try_exit(self) -> None:
        """End, unless a starter holds the lock (it is about to ask us to serve): the lock is
        held from here to the exit, so a starter after us finds no resolver and starts one."""
        try:
            lock = os.open(self.files.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:  # the run-root is gone: nobody can start or reach us any more
            os._exit(0)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock)
            self.exit_retry = time.monotonic() + 0.05
            return
        waiting = select.poll()
        waiting.register(self.control.fileno(), select.POLLIN)
        if waiting.poll(0):  # a request came in before the lock: answer it first
            os.close(lock)
            return
        try:
            with open(self.files.pid_file, "rb") as f:
                mine = loads(f.read())[0] == os.getpid()
        except (OSError, ValueError, IndexError, TypeError, KeyError):
            mine = False
        if mine:
            for path in (self.files.socket, self.files.pid_file):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        os._exit(0)

    # -- queries ---------------------------------------------------------------------------------
    def _on_udp(self, served: Served) -> None:
        for _ in range(BATCH):
            try:
                data, client = served.udp.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError:
                continue
            reply = self._answer(served, data, False, (served.udp, client))
            if reply is not None:
                try:
                    served.udp.sendto(reply, client)
                except OSError:
                    pass

    def _answer(self, served: Served, data: bytes, tcp: bool, reply_to) -> bytes | None:
        """The reply to one query, or None: dropped, or forwarded (answered when the upstream does)."""
        self.stats["queries"] += 1
        self.table.fresh()
        if len(data) < 12 or data[2] & 0x80:  # no header, or a response: never answer one
            self.stats["malformed"] += 1
            return None
        dns = self.dns
        try:
            query = dns.DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - any malformed packet
            self.stats["malformed"] += 1
            return _error_reply(data, FORMERR)
        if query.header.opcode != 0:
            return _error_reply(data, NOTIMP)
        if len(query.questions) != 1:
            self.stats["malformed"] += 1
            return _error_reply(data, FORMERR)
        question = query.q
        labels = [label.lower() for label in question.qname.label]
        try:
            name = b".".join(labels).decode("ascii")
        except UnicodeDecodeError:
            name = None  # no container is named so: the upstream's business
        reply = None
        if name is not None and question.qtype == PTR:
            address = ptr_address(labels)
            if address is not None:
                target = self.table.reverse(served.container_id, address)
                if target is not None:
                    reply = query.reply()
                    reply.header.aa = 0
                    reply.add_answer(dns.RR(question.qname, PTR, ttl=TTL, rdata=dns.PTR(target + ".")))
                elif address in self.table.owned:
                    reply = _nxdomain(query)
        elif name is not None:
            found = self.table.resolve(served.container_id, name)
            if found is not None:
                reply = query.reply()
                reply.header.aa = 0
                v4, v6 = found
                if question.qtype == A:
                    for address in self.random.sample(v4, len(v4)):
                        reply.add_answer(dns.RR(question.qname, A, ttl=TTL, rdata=dns.A(address)))
                elif question.qtype == AAAA:  # none for an IPv4-only name: NOERROR, empty (docker)
                    for address in self.random.sample(v6, len(v6)):
                        reply.add_answer(dns.RR(question.qname, AAAA, ttl=TTL, rdata=dns.AAAA(address)))
            elif self.table.owns(name):
                reply = _nxdomain(query)
            elif served.ndots_set and question.qtype in (A, AAAA) and len(labels) == 1:
                reply = query.reply()  # docker's: empty, so the client tries its search domains
                reply.header.aa = 0
        if reply is not None:
            self.stats["answered"] += 1
            return _fit(reply, query, tcp)
        return self._forward(served, data, reply_to, tcp)

    # -- forwarding ------------------------------------------------------------------------------
    def _forward(self, served: Served, data: bytes, reply_to, tcp: bool) -> bytes | None:
        if not served.upstreams or served.pending >= MAX_PENDING:
            return _error_reply(data, SERVFAIL)
        pending = _Pending(served, data, reply_to, tcp)
        served.pending += 1
        self.stats["forwarded"] += 1
        self._try_next(pending, None)
        return None

    def _try_next(self, pending: _Pending, last_reply: bytes | None) -> None:
        """Send the query to the next upstream; after the last, the client gets the last
        upstream's reply, or SERVFAIL if none answered."""
        served = pending.served
        self._close_upstream(pending)
        while pending.attempt + 1 < len(served.upstreams):
            pending.attempt += 1
            address, from_host = served.upstreams[pending.attempt]
            query_id = self._new_id()
            try:
                if pending.tcp:
                    sock = self._connect(served, address, from_host, pending)
                else:
                    sock = self._forwarder(served, address, from_host)
                    sock.sendto(query_id.to_bytes(2, "big") + pending.query[2:], (address, 53))
            except OSError:
                continue
            pending.sock, pending.server, pending.query_id = sock, _normal_address(address), query_id
            pending.deadline = time.monotonic() + UPSTREAM_TIMEOUT
            self.pending[query_id] = pending
            return
        served.pending -= 1
        if served.container_id not in self.served:
            return
        self._reply(pending, last_reply if last_reply is not None else _error_reply(pending.query, SERVFAIL))

    def _new_id(self) -> int:
        while True:
            query_id = self.random.getrandbits(16)
            if query_id not in self.pending:
                return query_id

    def _forwarder(self, served: Served, address: str, from_host: bool):
        """The UDP socket a query to `address` leaves from: made in the container's namespace
        (as docker's, its network's routes and rules apply), or ours for a server on the
        host's loopback taken from the host's resolv.conf."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sockets = self.host_forwarders if from_host else served.forwarders
        sock = sockets.get(family)
        if sock is None:
            def make():
                return socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            sock = make() if from_host else self._in_namespace(served.netns, make)
            sockets[family] = sock
            self.watch(sock.fileno(), lambda events: self._on_upstream(sock))
        return sock

    def _connect(self, served: Served, address: str, from_host: bool, pending: _Pending):
        """A TCP connection to upstream `address` (from the namespace _forwarder would send
        from), under way: the query is sent once it is made."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def make():
            return socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        sock = make() if from_host else self._in_namespace(served.netns, make)
        if sock.connect_ex((address, 53)) not in (0, errno.EINPROGRESS):
            sock.close()
            raise OSError(errno.ECONNREFUSED, "connect")
        pending.inbox = None  # not sent yet
        self.watch(sock.fileno(), lambda events: self._on_tcp_upstream(pending, sock, events), _OUT)
        return sock

    def _on_tcp_upstream(self, pending: _Pending, sock, events: int) -> None:
        if pending.sock is not sock or self.pending.get(pending.query_id) is not pending:
            return
        try:
            if pending.inbox is None:  # connected (or not): send the whole query
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    raise OSError(error, "connect")
                message = pending.query_id.to_bytes(2, "big") + pending.query[2:]
                sock.sendall(len(message).to_bytes(2, "big") + message)  # small: the buffer takes it
                self.epoll.modify(sock.fileno(), _IN)
                pending.inbox = b""
                return
            data = sock.recv(65537)
            if not data:
                raise OSError(errno.ECONNRESET, "closed")
        except OSError:
            del self.pending[pending.query_id]
            self._try_next(pending, None)
            return
        pending.inbox += data
        if len(pending.inbox) < 2 or len(pending.inbox) < 2 + int.from_bytes(pending.inbox[:2], "big"):
            return
        reply = pending.inbox[2:2 + int.from_bytes(pending.inbox[:2], "big")]
        if len(reply) < 12 or reply[:2] != pending.query_id.to_bytes(2, "big") \
                or not _same_question(pending.query, reply):
            del self.pending[pending.query_id]
            self._try_next(pending, None)
            return
        del self.pending[pending.query_id]
        self._upstream_replied(pending, reply)

    def _close_upstream(self, pending: _Pending) -> None:
        """The TCP connection of a forwarded query that is done with it (UDP sockets are shared)."""
        if pending.tcp and pending.sock is not None:
            self.forget(pending.sock.fileno())
            pending.sock.close()
            pending.sock = None

    def _on_upstream(self, sock) -> None:
        for _ in range(BATCH):
            try:
                data, source = sock.recvfrom(65535)
            except BlockingIOError:
                return
            except OSError:
                continue
            if len(data) < 12 or not data[2] & 0x80:
                continue
            query_id = int.from_bytes(data[:2], "big")
            pending = self.pending.get(query_id)
            if pending is None or pending.sock is not sock or _normal_address(source[0]) != pending.server \
                    or source[1] != 53 or not _same_question(pending.query, data):
                continue  # not the answer we wait for (late, or spoofed)
            del self.pending[query_id]
            self._upstream_replied(pending, data)

    def _upstream_replied(self, pending: _Pending, data: bytes) -> None:
        reply = pending.query[:2] + data[2:]
        rcode, authoritative = data[3] & 0x0F, data[2] & 0x04
        if rcode in (SERVFAIL, REFUSED) or (rcode == NXDOMAIN and not authoritative) \
                or rcode not in (NOERROR, NXDOMAIN):
            self._try_next(pending, reply)  # docker's: the next server may know better
            return
        self._close_upstream(pending)
        pending.served.pending -= 1
        self._reply(pending, reply)

    def _reply(self, pending: _Pending, reply: bytes) -> None:
        sock, target = pending.reply_to
        if isinstance(target, _TcpClient):
            self._send_tcp(target, reply)
            return
        try:
            sock.sendto(reply, target)
        except OSError:
            pass

    # -- TCP -------------------------------------------------------------------------------------
    def _on_accept(self, served: Served) -> None:
        for _ in range(BATCH):
            try:
                conn, _ = served.tcp.accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM) and served.clients:
                    self._close_client(next(iter(served.clients.values())))
                return
            conn.setblocking(False)
            if len(served.clients) >= MAX_TCP_CLIENTS:
                self._close_client(next(iter(served.clients.values())))
            client = _TcpClient(conn, served)
            served.clients[conn.fileno()] = client
            self.watch(conn.fileno(), lambda events, client=client: self._on_tcp(client, events))

    def _on_tcp(self, client: _TcpClient, events: int) -> None:
        client.last = time.monotonic()
        if events & _OUT and client.outbox:
            self._flush(client)
            if client.sock.fileno() < 0:
                return
        if not events & (_IN | select.EPOLLHUP | select.EPOLLERR):
            return
        try:
            data = client.sock.recv(65537)
        except BlockingIOError:
            return
        except OSError:
            self._close_client(client)
            return
        if not data:
            self._close_client(client)
            return
        client.inbox += data
        while len(client.inbox) >= 2:
            size = int.from_bytes(client.inbox[:2], "big")
            if len(client.inbox) < 2 + size:
                break
            message, client.inbox = client.inbox[2:2 + size], client.inbox[2 + size:]
            reply = self._answer(client.served, message, True, (None, client))
            if reply is not None:
                self._send_tcp(client, reply)
            if client.sock.fileno() < 0:
                return

    def _send_tcp(self, client: _TcpClient, reply: bytes) -> None:
        if client.sock.fileno() < 0:
            return
        if len(client.outbox) > MAX_TCP_BACKLOG:  # it asks and never reads: not ours to buffer
            self._close_client(client)
            return
        client.outbox += len(reply).to_bytes(2, "big") + reply
        self._flush(client)

    def _flush(self, client: _TcpClient) -> None:
        try:
            sent = client.sock.send(client.outbox)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close_client(client)
            return
        client.outbox = client.outbox[sent:]
        self.epoll.modify(client.sock.fileno(), _IN | (_OUT if client.outbox else 0))

    def _close_client(self, client: _TcpClient) -> None:
        fd = client.sock.fileno()
        if fd < 0:
            return
        client.served.clients.pop(fd, None)
        self.forget(fd)
        client.sock.close()


def _same_file(fd: int, other: int) -> bool:
    mine, theirs = os.fstat(fd), os.fstat(other)
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


# As docker's: the resolver listens on ports of its own, and the container's 127.0.0.11:53 is
# translated to them, so that the container may run its own DNS server on *:53. The table is
# made anew each time (a resolver that was restarted leaves its old ports behind).
_DNAT = """table ip berth_dns
delete table ip berth_dns
table ip berth_dns {{
    chain output {{
        type nat hook output priority -100; policy accept;
        ip daddr {address} udp dport 53 dnat to {address}:{udp}
        ip daddr {address} tcp dport 53 dnat to {address}:{tcp}
    }}
}}
"""


def _listeners(port: int):
    """The UDP and TCP sockets of 127.0.0.11:53, made in the current network namespace: on that
    port itself, or (port 0) on ports of their own that 127.0.0.11:53 is translated to (DNAT)."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
    try:
        try:
            udp.bind((LISTEN_ADDRESS, port))
        except OSError as err:
            if err.errno != errno.EADDRNOTAVAIL:
                raise
            # pid 1 brings its loopback up while the runtime calls us (on_created): we may be first
            from berth.runtime.netlink_lo import loopback_up  # lazy: only then

            loopback_up()
            udp.bind((LISTEN_ADDRESS, port))
        if port == 53:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((LISTEN_ADDRESS, port))
        tcp.listen(64)
        if port != 53:
            _nft_here(_DNAT.format(address=LISTEN_ADDRESS, udp=udp.getsockname()[1], tcp=tcp.getsockname()[1]))
    except BaseException as err:
        udp.close()
        tcp.close()
        if isinstance(err, OSError):
            raise OSError(err.errno, f"cannot listen on {LISTEN_ADDRESS}:53 in the container: {err.strerror}") \
                from None
        raise
    return udp, tcp


_libnftables = None


def _nft_here(script: str) -> None:
    """Apply an nft script in the current network namespace: through libnftables in this
    process (a context made here: its netlink socket belongs to the namespace it is made in),
    which spares a process per container; the nft program where the library is missing."""
    global _libnftables
    if _libnftables is None:
        import ctypes  # lazy: the resolver alone

        try:
            lib = ctypes.CDLL("libnftables.so.1")
        except OSError:
            lib = False
        else:
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        _libnftables = lib
    if not _libnftables:
        from berth.network.nft import nft  # lazy: only without libnftables

        nft(script=script)
        return
    lib = _libnftables
    context = lib.nft_ctx_new(0)
    if not context:
        raise OSError(errno.ENOMEM, "nft_ctx_new failed")
    try:
        lib.nft_ctx_buffer_error(context)
        if lib.nft_run_cmd_from_buffer(context, script.encode()) != 0:
            message = (lib.nft_ctx_get_error_buffer(context) or b"").decode(errors="replace").strip()
            raise OSError(errno.EINVAL, f"nft: {message.splitlines()[0] if message else 'failed'}")
    finally:
        lib.nft_ctx_free(context)


def _error_reply(query: bytes, rcode: int) -> bytes:
    """A reply that is only a header and the question as sent (FORMERR, NOTIMP, SERVFAIL): made
    without parsing, as the query may not parse. Our reply never has a question we cannot find."""
    flags = int.from_bytes(query[2:4], "big")
    flags = _QR | (flags & 0x7900) | 0x0080 | rcode  # opcode and RD kept; RA; the code
    question = _question(query)
    count = b"\x00\x01" if question else b"\x00\x00"
    return query[:2] + flags.to_bytes(2, "big") + count + bytes(6) + question


def _question(message: bytes) -> bytes:
    """The raw first question of a message (b"" if it has none that fits)."""
    if len(message) < 12 or message[4:6] == b"\x00\x00":
        return b""
    at = 12
    while at < len(message):
        size = message[at]
        if size == 0:
            end = at + 5
            return message[12:end] if end <= len(message) else b""
        if size & 0xC0:  # a compression pointer: never in a question we ask about
            return b""
        at += 1 + size
    return b""


def _same_question(query: bytes, reply: bytes) -> bool:
    return _question(query).lower() == _question(reply).lower()


def _nxdomain(query):
    reply = query.reply()
    reply.header.rcode = NXDOMAIN
    return reply


def _fit(reply, query, tcp: bool) -> bytes:
    """Pack `reply` within the size the client takes (UDP: 512 bytes, or its EDNS size), answers
    dropped from the end until it fits, TC set (docker's truncateResp)."""
    limit = 65535
    if not tcp:
        advertised = [rr.rclass for rr in query.ar if rr.rtype == OPT]
        limit = max(_DEFAULT_UDP, min(advertised[0], 65535) if advertised else 0)
    packed = reply.pack()
    if len(packed) > limit:
        if not tcp:
            reply.header.tc = 1
        while reply.rr and len(packed) > limit:
            reply.rr.pop()
            packed = reply.pack()
    return packed
