"""The userland proxy of a container's IPv6 published ports, as docker's docker-proxy: the
kernel cannot DNAT IPv6 to a container's IPv4 address, so a process accepts on [::]:PORT (or
the IPv6 address asked for) and forwards to the container. TCP streams are spliced through a
pipe (at most PIPE_SIZE bytes in flight per direction, none copied through Python); UDP
datagrams travel in docker-proxy's per-client flows (idle ones end after 90 s).

One process serves every IPv6 port of one container run. The engine binds the sockets before
the container starts (a taken port fails the start), then forks it (start): it is the child
of the container's supervisor and dies with it (PR_SET_PDEATHSIG); the engine ends it when it
releases the run's network. Nothing here is imported unless a container publishes ports."""

import _signal
import _socket
import errno
import os
import select
import time

PIPE_SIZE = 65536  # a pipe's default capacity: the bytes one direction of a connection holds
UDP_BUFFER = 65507  # docker-proxy's: the largest UDP payload over IPv4
UDP_IDLE = 90.0  # docker-proxy's DefaultConnTrackTimeout
MAX_FLOWS = 1024  # UDP clients per port at once; the oldest flow makes room for a new one
BATCH = 16  # accepts, datagrams or splices per wake-up: one busy peer cannot starve the rest
_SPLICE = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
_PKTINFO_SPACE = _socket.CMSG_SPACE(20)  # struct in6_pktinfo
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_IN, _OUT = select.EPOLLIN, select.EPOLLOUT


def ipv6_listenable() -> bool:
    """docker's IsV6Listenable: whether [::1]:0 can be bound (not with ipv6.disable=1, nor
    when loopback has no ::1, disable_ipv6). Without it, nothing is published on IPv6."""
    try:
        sock = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    except OSError:
        return False
    try:
        sock.bind(("::1", 0))
    except OSError:
        return False
    finally:
        sock.close()
    return True


def listen(proto: str, host_ip: str, port: int, backend: tuple[str, int]) -> _socket.socket:
    """The socket the proxy will serve host_ip:port on, bound (and listening, for tcp) now, as
    docker binds it (v6-only; SO_REUSEADDR for tcp only, where it lets a restart bind past
    TIME_WAIT: for udp it would let a second socket share the port). An OSError in docker's
    words when the host cannot give it."""
    kind = _socket.SOCK_STREAM if proto == "tcp" else _socket.SOCK_DGRAM
    try:
        sock = _socket.socket(_socket.AF_INET6, kind | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
    except OSError as err:
        raise OSError(f"failed to create socket for userland proxy for "
                      f"{_binding(proto, host_ip, port, backend)}: {_reason(err)}") from None
    try:
        sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_V6ONLY, 1)
        if proto == "tcp":
            sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        else:  # the address a client sent to: replies leave from it
            sock.setsockopt(_socket.IPPROTO_IPV6, _socket.IPV6_RECVPKTINFO, 1)
        sock.bind((host_ip, port))
        if proto == "tcp":
            sock.listen(4096)  # capped by net.core.somaxconn, as docker's -1
    except OSError as err:
        sock.close()
        raise OSError(f"failed to bind host port for {_binding(proto, host_ip, port, backend)}: "
                      f"{_reason(err)}") from None
    return sock


def _binding(proto: str, host_ip: str, port: int, backend: tuple[str, int]) -> str:
    """libnetwork's PortBinding.String(): [::]:8080:172.17.0.2:80/tcp."""
    return f"[{host_ip}]:{port}:{backend[0]}:{backend[1]}/{proto}"


def _reason(err: OSError) -> str:
    reason = err.strerror or str(err)
    return reason[:1].lower() + reason[1:]  # Go's errno texts are lower case


def start(forwards: list) -> int:
    """Fork the proxy of `forwards` [(proto, listening socket, (container IPv4, port))]; its
    pid. Our copies of the sockets are closed: from now on the proxy alone holds them."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            _detach(parent, [sock.fileno() for _, sock, _ in forwards])
            _serve(forwards)
        finally:
            os._exit(0)
    for _, sock, _ in forwards:
        sock.close()
    return pid


def _detach(parent: int, keep: list[int]) -> None:
    """Become a process that holds only `keep` and dies with `parent` (the supervisor)."""
    import gc  # lazy: only the proxy

    from berth.runtime import syscalls as sc  # lazy: only the proxy
    from berth.runtime.forked import keep_only_fds  # lazy: only the proxy

    # The parent's objects are never collected here: a finalizer would close an fd number that
    # is one of our connections by then. Never traversed either, so their pages stay shared.
    gc.freeze()
    sc.prctl(sc.PR_SET_PDEATHSIG, _signal.SIGKILL)
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(0)
    os.setpgid(0, 0)  # the terminal's signals (a foreground run's ^C) are the caller's business
    for signum in _signal.valid_signals():
        if callable(_signal.getsignal(signum)):  # the caller's handlers (sig-proxy...) are not ours
            _signal.signal(signum, _signal.SIG_DFL)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    keep_only_fds(*keep)  # the caller's locks, pipes and held ports stay the caller's alone
    sc.prctl(sc.PR_SET_NAME, b"berth-proxy")  # what ps -o comm and top show


def _serve(forwards: list) -> None:
    loop = _Loop()
    for proto, sock, backend in forwards:
        (_TcpListener if proto == "tcp" else _UdpListener)(loop, sock, backend)
    loop.run()


class _Loop:
    """An epoll loop: each fd has one handler (its on_events(fd, events)) and one event mask;
    `tickers` (ticking() -> whether they wait for time to pass; tick(now)) are called once a
    second while one of them is ticking."""

    def __init__(self):
        self.epoll = select.epoll()
        self.handlers = {}
        self.masks = {}
        self.tickers = []
        self.dropped = set()  # fds forgotten while this round's events are handled

    def watch(self, fd: int, mask: int, handler) -> None:
        self.epoll.register(fd, mask)
        self.handlers[fd] = handler
        self.masks[fd] = mask

    def want(self, fd: int, mask: int) -> None:
        """A new mask for a watched fd (one forgotten stays so)."""
        if self.masks.get(fd, mask) != mask:
            self.epoll.modify(fd, mask)
            self.masks[fd] = mask

    def forget(self, fd: int) -> None:
        if self.handlers.pop(fd, None) is not None:
            del self.masks[fd]
            self.epoll.unregister(fd)
            self.dropped.add(fd)

    def run(self) -> None:
        next_tick = 0.0
        while True:
            ticking = any([ticker.ticking() for ticker in self.tickers])
            for fd, events in self.epoll.poll(max(0.0, next_tick - time.monotonic()) if ticking else -1):
                # An fd closed by an earlier handler of this round may be a new one already:
                # what was reported is not about it.
                handler = None if fd in self.dropped else self.handlers.get(fd)
                if handler is not None:
                    handler.on_events(fd, events)
            self.dropped.clear()
            now = time.monotonic()
            if now >= next_tick:
                for ticker in self.tickers:
                    ticker.tick(now)
                next_tick = now + 1.0


# -- TCP ---------------------------------------------------------------------------------------

class _TcpListener:
    __slots__ = ("loop", "sock", "backend", "paused_until")

    def __init__(self, loop: _Loop, sock: _socket.socket, backend: tuple[str, int]):
        self.loop, self.sock, self.backend = loop, sock, backend
        self.paused_until = 0.0
        loop.watch(sock.fileno(), _IN, self)
        loop.tickers.append(self)

    def on_events(self, fd: int, events: int) -> None:
        for _ in range(BATCH):
            try:
                client, _ = self.sock._accept()
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno in _OUT_OF_FDS:  # accept again in a second, not in a busy loop
                    self.loop.want(fd, 0)
                    self.paused_until = time.monotonic() + 1.0
                return
            _Connection(self.loop, client, self.backend)

    def ticking(self) -> bool:
        return bool(self.paused_until)

    def tick(self, now: float) -> None:
        if self.paused_until and now >= self.paused_until:
            self.paused_until = 0.0
            self.loop.want(self.sock.fileno(), _IN)


class _Pump:
    """One direction of a connection: src -> a pipe of ours -> dst, by splice."""

    __slots__ = ("src", "dst", "read_end", "write_end", "pending", "full", "eof", "shut")

    def __init__(self, src: _socket.socket, dst: _socket.socket):
        self.src, self.dst = src, dst
        self.read_end, self.write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self.pending = 0  # bytes in the pipe
        self.full = False  # the pipe took nothing more: read again once dst has taken some
        self.eof = False  # src has ended its side
        self.shut = False  # ...and dst has been told so (SHUT_WR)

    def move(self) -> None:
        """Splice until src has nothing more or dst takes nothing more (at most BATCH rounds),
        then pass src's end on once all is through; OSError when one is gone."""
        for _ in range(BATCH):
            if self.pending:
                try:
                    self.pending -= os.splice(self.read_end, self.dst.fileno(), self.pending, flags=_SPLICE)
                except BlockingIOError:
                    break
                self.full = False
            if self.eof:
                break
            try:
                moved = os.splice(self.src.fileno(), self.write_end, PIPE_SIZE - self.pending, flags=_SPLICE)
            except BlockingIOError:
                self.full = self.pending > 0  # src is empty, or the pipe's slots are taken: wait for dst
                break
            if moved == 0:
                # End of stream, unless the pipe is not empty: a socket whose peer has sent its
                # FIN says 0 also when its data is waiting and the pipe has no slot left for it.
                if self.pending:
                    self.full = True
                    break
                self.eof = True
            self.pending += moved
        if self.eof and not self.pending and not self.shut:
            self.dst.shutdown(_socket.SHUT_WR)
            self.shut = True

    @property
    def reading(self) -> bool:
        return not self.eof and not self.full and self.pending < PIPE_SIZE

    @property
    def done(self) -> bool:
        return self.shut

    def close(self) -> None:
        os.close(self.read_end)
        os.close(self.write_end)


class _Connection:
    """One client of a published port and our connection to the container for it. As
    docker-proxy's: a refused connect closes the client; each side's end is passed on
    (shutdown); the connection closes once both sides have ended, or at the first error."""

    __slots__ = ("loop", "client", "server", "pumps", "closed")

    def __init__(self, loop: _Loop, client_fd: int, backend: tuple[str, int]):
        self.loop = loop
        self.pumps = ()
        self.closed = False
        self.client = _socket.socket(_socket.AF_INET6, _socket.SOCK_STREAM, 0, client_fd)
        self.client.setblocking(False)
        self.server = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC
                                     | _socket.SOCK_NONBLOCK)
        if self.server.connect_ex(backend) not in (0, errno.EINPROGRESS):
            self.close()
            return
        loop.watch(self.server.fileno(), _OUT, self)

    def on_events(self, fd: int, events: int) -> None:
        if not self.pumps:
            self._connected()
            return
        if events & select.EPOLLERR:  # reset: what is in flight is lost, as with docker-proxy
            self.close()
            return
        self._pump()
        if events & select.EPOLLHUP and not self.closed:  # that side is shut both ways: nothing more
            self.loop.forget(fd)  # will come from it, and epoll would report the hang-up for ever

    def _connected(self) -> None:
        if self.server.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR):
            self.close()
            return
        self.pumps = (_Pump(self.client, self.server), _Pump(self.server, self.client))
        self.loop.watch(self.client.fileno(), 0, self)
        self._pump()

    def _pump(self) -> None:
        upstream, downstream = self.pumps
        try:
            upstream.move()
            downstream.move()
        except OSError:
            self.close()
            return
        if upstream.done and downstream.done:
            self.close()
            return
        self.loop.want(self.client.fileno(), (_IN if upstream.reading else 0) | (_OUT if downstream.pending else 0))
        self.loop.want(self.server.fileno(), (_IN if downstream.reading else 0) | (_OUT if upstream.pending else 0))

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.server):
            self.loop.forget(sock.fileno())
            sock.close()
        for pump in self.pumps:
            pump.close()


# -- UDP ---------------------------------------------------------------------------------------

class _UdpListener:
    """Datagrams from each client (address and port) go to the container from a socket of
    that client's flow, whose replies go back to the client from the address it sent to."""

    __slots__ = ("loop", "sock", "backend", "flows", "buffer", "view")

    def __init__(self, loop: _Loop, sock: _socket.socket, backend: tuple[str, int]):
        self.loop, self.sock, self.backend = loop, sock, backend
        self.flows = {}  # client address -> _Flow, oldest first
        self.buffer = bytearray(UDP_BUFFER)
        self.view = memoryview(self.buffer)
        loop.watch(sock.fileno(), _IN, self)
        loop.tickers.append(self)

    def on_events(self, fd: int, events: int) -> None:
        for _ in range(BATCH):
            try:
                size, ancillary, _, client = self.sock.recvmsg_into([self.buffer], _PKTINFO_SPACE)
            except BlockingIOError:
                return
            except OSError:
                continue
            flow = self.flows.get(client)
            if flow is None:
                flow = self._open(client, ancillary)
                if flow is None:
                    continue
            flow.forward(self.view[:size])

    def _open(self, client, ancillary) -> "_Flow | None":
        if len(self.flows) >= MAX_FLOWS:
            self.flows[next(iter(self.flows))].close()
        source = [(level, kind, data[:16] + bytes(4)) for level, kind, data in ancillary
                  if level == _socket.IPPROTO_IPV6 and kind == _socket.IPV6_PKTINFO]
        try:
            flow = _Flow(self, client, source)
        except OSError:
            return None
        self.flows[client] = flow
        return flow

    def ticking(self) -> bool:
        return bool(self.flows)

    def tick(self, now: float) -> None:
        for flow in [f for f in self.flows.values() if now - f.last >= UDP_IDLE]:
            flow.close()


class _Flow:
    __slots__ = ("listener", "client", "source", "sock", "last")

    def __init__(self, listener: _UdpListener, client, source: list):
        self.listener, self.client, self.source = listener, client, source
        self.sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
        try:
            self.sock.connect(listener.backend)
        except OSError:
            self.sock.close()
            raise
        self.last = time.monotonic()
        listener.loop.watch(self.sock.fileno(), _IN, self)

    def forward(self, data: memoryview) -> None:
        self.last = time.monotonic()
        try:
            self.sock.send(data)
        except OSError:  # a full buffer, or the container refused the last one: dropped, as UDP is
            pass

    def on_events(self, fd: int, events: int) -> None:
        view = self.listener.view
        for _ in range(BATCH):
            try:
                size = self.sock.recv_into(view)
            except BlockingIOError:
                return
            except OSError:  # ECONNREFUSED: nobody listens in the container (yet); docker waits on
                continue
            self.last = time.monotonic()
            try:
                self.listener.sock.sendmsg([view[:size]], self.source, 0, self.client)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.loop.forget(self.sock.fileno())
        self.sock.close()
        del self.listener.flows[self.client]
