"""Exec endpoints: create an exec instance, start it (a hijacked stream unless detached),
resize its terminal, inspect it. The instances are berth.engine.exec_instances'."""

from berth.api.http import STDOUT, Hijack, Response, frame
from berth.api.streams import content_type
from berth.engine import exec_instances
from berth.errors import BerthError, InvalidArgument


def create(req) -> Response:
    config = req.json_object(required=True)
    return Response({"Id": exec_instances.create(req.engine, req.params["id"], config)}, status=201)


def start(req):
    """The process gets the terminal its create asked for; the start's Tty only says whether
    its output goes raw or in docker's frames (as dockerd's exec router). An attached exec
    starts once the connection is ours, as dockerd's: its first output then never races the
    response's head (a client that reads the head buffered would swallow it)."""
    body = req.json_object()
    instance = exec_instances.load(req.engine, req.params["id"])
    raw = bool(body.get("Tty"))
    size = exec_instances.console_size(body.get("ConsoleSize"))
    if body.get("Detach"):
        exec_instances.start(req.engine, instance, True, size)
        return Response(b"", status=200)
    exec_instances.check_startable(req.engine, instance)

    def run(sock, early: bytes) -> None:
        try:
            session = exec_instances.start(req.engine, instance, False, size)
        except BerthError as err:  # too late for a status: dockerd writes it as the output
            message = str(err).encode() + b"\r\n"
            sock.sendall(message if raw else frame(STDOUT, message))
            return
        try:
            exec_instances.finish(instance, session, sock.fileno(), sock.fileno(), framed=not raw)
        except OSError:
            pass  # the client went away

    return Hijack(run, content_type(req, raw))


def resize(req) -> Response:
    rows, cols = req.int_arg("h"), req.int_arg("w")
    if rows is None or cols is None or rows < 0 or cols < 0:
        raise InvalidArgument("invalid resize: h and w must be given, as non-negative integers")
    instance = exec_instances.load(req.engine, req.params["id"])
    exec_instances.resize(req.engine, instance, rows, cols)
    return Response(b"", status=200)


def inspect(req) -> Response:
    return Response(exec_instances.load(req.engine, req.params["id"]).inspect())


ROUTES = [
    ("POST", "/containers/{id}/exec", create),
    ("POST", "/exec/{id}/start", start),
    ("POST", "/exec/{id}/resize", resize),
    ("GET", "/exec/{id}/json", inspect),
]
