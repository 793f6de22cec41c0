"""Attaching before the start (the Engine API's attach, then start, as docker's `run`): the
client attached first waits, in its own process, with a supervisor forked and already connected
to (a PendingStart with attach). It listens on START_WAITER in the container's run directory,
and whoever starts the container (PendingStart.start) asks it to, so the client sees the output
from the first byte, as `run` and `start -a` do. Only the API's attach loads this."""

import errno
import os
import select

from berth.engine.attach import START_WAITER, PendingStart, Session, attach, from_reply, waiter_socket
from berth.engine.state import is_running
from berth.errors import BerthError

WAIT_POLL = 0.5  # seconds between looks at whether the container was started or removed otherwise


class StartWaiter:
    """A client attached to a container not started yet: a supervisor forked for it and
    connected (PendingStart with attach), and the START_WAITER socket. wait() returns the
    Session once the container runs: started through us, or (someone started it without
    asking, or a waiter was there first) attached to afterwards."""

    def __init__(self, engine, record: dict, stdin: bool, size: tuple[int, int] | None,
                 streams: tuple[str, ...] = ("stdout", "stderr")):
        from berth.fs import make_dirs  # lazy: only attaching before a start

        self.engine = engine
        self.record = record
        self.stdin = stdin
        self.size = size
        self.streams = streams
        directory = engine.paths.container_run(record["Id"])
        make_dirs(directory)
        self.listener = listen_once(directory)
        self.pending = None
        if self.listener is not None:
            self.pending = PendingStart(engine, attach=True, stdin=stdin, size=size, streams=streams)

    def wait(self, gone) -> Session | None:
        """The Session once the container has started; None if `gone()` (the client left
        meanwhile, asked every WAIT_POLL seconds) or the container was removed."""
        try:
            while True:
                readers = [] if self.listener is None else [self.listener]
                try:
                    ready = select.select(readers, [], [], WAIT_POLL)[0]
                except InterruptedError:
                    continue
                if ready:
                    session = self._serve_start()
                    if session is not None:
                        return session
                if gone():
                    return None
                try:
                    record = self.engine.load(self.record["Id"])
                except FileNotFoundError:
                    return None
                if is_running(record):  # started by someone who did not ask us
                    return attach(self.engine, record["Id"], self.stdin, self.size, block=True,
                                  streams=self.streams)
                if record["State"]["StartedAt"] != self.record["State"]["StartedAt"]:
                    return None  # ... and it has ended already
        finally:
            self.close()

    def _serve_start(self) -> Session | None:
        import _socket

        try:
            conn = _socket.socket(fileno=self.listener._accept()[0])
        except OSError:
            return None
        try:
            conn.settimeout(5.0)
            if conn.recv(16) != b"start":  # a probe of whether we are alive (_listen_once)
                return None
            return self._start(conn)
        except OSError:
            return None
        finally:
            conn.close()

    def _start(self, conn) -> Session:
        """Start the container for the starter on `conn`, and tell it how that went."""
        from berth import fastjson  # lazy: only a start through a waiter

        pending, self.pending = self.pending, None
        try:
            session = pending.start(self.engine.load(self.record["Id"]))
            reply = {"pid": 0}
        except BerthError as err:
            session, reply = None, {"error": str(err), "kind": err.kind}
        except FileNotFoundError:
            session, reply = None, {"error": f"No such container: {self.record['Id']}", "kind": "not_found"}
        try:
            conn.sendall(fastjson.dumps(reply).encode())
        except OSError:
            pass
        if session is None:
            raise from_reply(reply)
        return session

    def close(self) -> None:
        if self.pending is not None:
            self.pending.cancel()
            self.pending = None
        if self.listener is not None:
            try:
                os.unlink(os.path.join(self.engine.paths.container_run(self.record["Id"]), START_WAITER))
            except OSError:
                pass
            self.listener.close()
            self.listener = None


def listen_once(directory: str):
    """A listening START_WAITER socket, or None if another waiter is there already."""
    try:
        sock = waiter_socket(directory, "bind")
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise
        try:
            waiter_socket(directory, "connect").close()
            return None  # alive: it starts the container, we attach afterwards
        except OSError:  # a stale one of a waiter that died
            os.unlink(os.path.join(directory, START_WAITER))
        return listen_once(directory)
    os.chmod(os.path.join(directory, START_WAITER), 0o600)
    sock.listen(4)
    return sock
