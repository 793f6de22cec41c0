"""POST /build: dockerd's classic builder over the Engine API (the docker CLI with DOCKER_BUILDKIT=0,
docker-py's images.build). The body is the context tar; the answer streams the builder's output as
{"stream"} lines, then {"aux": {"ID"}}, or ends with docker's {"errorDetail", "error"}.

The build runs in a child process of the connection (its own main thread, as the runtime's forks
want) and sends its output up a pipe; a client that goes away leaves the build to finish (and
clean up its containers) with nobody listening."""

import contextlib
import json
import os
import signal

from berth.api.http import Hijack, Request, Stream, json_lines
from berth.errors import BerthError, InvalidArgument, NotImplementedYet, from_kind

NETWORK_MODES = ("default", "bridge", "none", "host")


def build(req: Request) -> Stream:
    from berth.engine import build_upload  # lazy: only builds
    from berth.engine.build import BuildOptions

    if req.arg("version", "1") == "2":  # (its context comes through the session: remote=client-session)
        raise InvalidArgument("berth serves the classic builder only (version=1): set DOCKER_BUILDKIT=0")
    if req.arg("remote"):
        raise NotImplementedYet("building from a remote context (git or URL) is not supported by berth: "
                                "send the context as the request body")
    network = req.arg("networkmode") or "default"
    if network not in NETWORK_MODES:
        raise InvalidArgument(f'network mode "{network}" is not supported for builds: use default, none or host')
    options = {"tags": req.args("t"), "build_args": _string_map(req, "buildargs", nullable=True),
               "labels": _string_map(req, "labels"), "target": req.arg("target") or None,
               "no_cache": req.flag("nocache"), "pull": req.flag("pull"), "network": network,
               "quiet": req.flag("q"), "platform": req.arg("platform") or None,
               "cache_from": _string_list(req, "cachefrom")}
    # rm and forcerm are accepted: berth never leaves a step's container behind, failed or not

    with contextlib.ExitStack() as cleanup:
        context_dir = cleanup.enter_context(build_upload.unpacked_context(req.engine, req.stream()))
        dockerfile = build_upload.dockerfile_in(context_dir, req.arg("dockerfile"))
        messages = _run(req, BuildOptions(context_dir, dockerfile, **options))
        cleanup.callback(messages.close)  # waits for the build (LIFO: before the context goes)
        # dockerd answers an error before any output as the request's error (docker's CLI prints
        # "Error response from daemon: ..."), one after it inside the stream
        first = next(messages)
        if "error" in first:
            raise from_kind(first.get("kind"), first["error"])
        return Stream(json_lines(_docker_messages(first, messages, cleanup.pop_all(), options["quiet"])))


def _docker_messages(first: dict, messages, cleanup: contextlib.ExitStack, quiet: bool):
    """The child's messages as dockerd words them; the context goes once the build has ended,
    even when the client went away before."""
    with cleanup:
        for message in _chain(first, messages):
            if "out" in message:
                yield {"stream": message["out"]}
            elif "id" in message:
                # dockerd's -q: the image ID is the whole output (its aux goes to the silenced writer)
                yield {"stream": message["id"] + "\n"} if quiet else {"aux": {"ID": message["id"]}}
            else:
                detail = {"message": message["error"]}
                if message.get("code"):
                    detail["code"] = message["code"]  # docker's CLI exits with a failed RUN's code
                yield {"errorDetail": detail, "error": message["error"]}


def _chain(first, rest):
    yield first
    yield from rest


def _run(req: Request, options):
    """Fork the build; yield what it says ({"out"}, then {"id"} or {"error", "kind", "code"})."""
    from berth.engine.build import RunFailed, build

    engine = req.engine
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the build
        os.close(reader)
        if req.sock is not None:
            req.sock.close()  # the client's connection ends with the connection's process, not ours
        # a cancel (the client gone) interrupts the build, which then removes its step's container
        signal.signal(signal.SIGINT, signal.default_int_handler)
        code = 0
        try:
            with os.fdopen(writer, "w", encoding="utf-8", errors="surrogateescape") as pipe:
                def send(message: dict) -> None:
                    try:
                        pipe.write(json.dumps(message) + "\n")
                        pipe.flush()
                    except (BrokenPipeError, ValueError):
                        pass  # nobody listens any more: the build still finishes and cleans up

                # dockerd emits the image's ID (aux) before "Successfully built" and the tags
                held: list[str] = []

                def out(text: str) -> None:
                    if held or text.startswith("Successfully built "):
                        held.append(text)
                    else:
                        send({"out": text})

                try:
                    send({"id": build(engine, options, out)})
                    for text in held:
                        send({"out": text})
                except RunFailed as err:
                    send({"error": str(err), "kind": err.kind, "code": err.code})
                except BerthError as err:
                    send({"error": str(err), "kind": err.kind})
                except Exception as err:  # noqa: BLE001 - reported to the client, not a dead stream
                    if os.environ.get("BERTH_DEBUG"):
                        import traceback  # lazy: only BERTH_DEBUG

                        traceback.print_exc()
                    send({"error": str(err) or type(err).__name__, "kind": "system"})
        except BaseException:  # noqa: BLE001 - the child never returns into the server
            code = 1
        finally:
            os._exit(code)
    os.close(writer)
    return _messages(reader, pid)


def _messages(reader: int, pid: int):
    with os.fdopen(reader, "r", encoding="utf-8", errors="surrogateescape") as pipe:
        ended = False  # the build said its result, or its end of output came
        try:
            for line in pipe:
                message = json.loads(line)
                ended = ended or "id" in message or "error" in message
                yield message
            if not ended:
                ended = True
                yield {"error": "the build ended without a result", "kind": "system"}
        finally:
            # the SIGIO of a client's hang-up (api.server.ClientWatch) has said all it had to
            previous = signal.signal(signal.SIGIO, signal.SIG_IGN)
            try:
                if not ended:  # the client went away: cancel the build, as dockerd does
                    os.kill(pid, signal.SIGINT)
                for _ in pipe:  # what it still says until it has removed its step's container
                    pass
                os.waitpid(pid, 0)
            finally:
                signal.signal(signal.SIGIO, previous)


def session(req: Request) -> Hijack:
    """POST /session, which a BuildKit client (docker 20.10's CLI with DOCKER_BUILDKIT=1) opens
    beside its build: upgraded and held open, unused, so that the client reads the build's refusal
    (version=2) instead of failing on a 404 here with gRPC's words."""

    def run(sock, early: bytes) -> None:
        sock.settimeout(60)
        try:
            while sock.recv(1 << 16):
                pass
        except OSError:
            pass

    return Hijack(run, "application/octet-stream", {"Upgrade": req.headers.get("upgrade", "h2c")})


def _string_map(req: Request, name: str, nullable: bool = False) -> dict:
    """A JSON object of strings (buildargs may name an arg without a value: null)."""
    value = req.json_arg(name)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(v, str) or (nullable and v is None) for v in value.values()):
        raise InvalidArgument(f"invalid {name}: expected a JSON object of strings")
    return value


def _string_list(req: Request, name: str) -> list:
    value = req.json_arg(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid {name}: expected a JSON array of strings")
    return value


ROUTES = [
    ("POST", "/build", build),
    ("POST", "/session", session),
]
