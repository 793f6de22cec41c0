"""POST /build, driven by the real clients: docker's CLI with its classic builder (DOCKER_BUILDKIT=0)
against berth's socket and docker-py's images.build; the same build cache as `berth build`; a
context tar that tries to write outside its directory."""

import io
import json
import os
import subprocess
import tarfile

import pytest
from test_api_service import request

from conftest import ApiService

docker_py = pytest.importorskip("docker")

DOCKERFILE = """FROM busybox
ARG GREETING=hello
ENV GREETING=$GREETING
COPY app.txt /app/
RUN cat /app/app.txt > /app/copy.txt
LABEL tier=test
CMD ["cat", "/app/copy.txt"]
"""


def context(tmp_path, dockerfile: str = DOCKERFILE, **files: str) -> str:
    directory = tmp_path / "ctx"
    directory.mkdir(exist_ok=True)
    (directory / "Dockerfile").write_text(dockerfile)
    (directory / "app.txt").write_text("from the context\n")
    for name, text in files.items():
        path = directory / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(directory)


def classic(api: ApiService, *args: str, client: str = ApiService.DOCKER_28):
    """docker build with the classic builder against berth's socket."""
    env = {**api.env, "DOCKER_BUILDKIT": "0"}
    return subprocess.run([client, "build", *args], capture_output=True, text=True, env=env, timeout=300,
                          stdin=subprocess.DEVNULL)


def image_id(api: ApiService, name: str) -> str:
    return api.berth.ok("image", "inspect", "--format", "{{.Id}}", name).strip()


@pytest.mark.parametrize("cli", [ApiService.DOCKER_28, ApiService.DOCKER_20])
def test_docker_cli_classic_build(api, tmp_path, cli):
    ctx = context(tmp_path)
    done = classic(api, "-t", "app:1", "-t", "app:2", "--build-arg", "GREETING=hi", "--label", "from=cli", ctx,
                   client=cli)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Sending build context to Docker daemon" in out
    assert "Step 1/8 : FROM busybox" in out and "Step 5/8 : RUN cat /app/app.txt > /app/copy.txt" in out
    built = image_id(api, "app:1")
    assert f"Successfully built {built[7:19]}" in out
    assert "Successfully tagged app:1" in out and "Successfully tagged app:2" in out
    assert image_id(api, "app:2") == built
    config = json.loads(api.berth.ok("image", "inspect", "--format", "{{json .Config}}", "app:1"))
    assert "GREETING=hi" in config["Env"] and config["Labels"] == {"tier": "test", "from": "cli"}
    assert api.berth.ok("run", "--rm", "--network", "none", "app:1") == "from the context\n"
    # -q prints the ID alone; the cache made the same image
    quiet = classic(api, "-q", "-t", "app:1", "--build-arg", "GREETING=hi", "--label", "from=cli", ctx, client=cli)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip() == built
    assert api.berth.ok("ps", "-aq") == ""  # no step's container left


def test_api_and_cli_share_the_cache(api, tmp_path):
    ctx = context(tmp_path)
    first = api.berth.ok("build", "-t", "cached", ctx)
    assert "Using cache" not in first
    done = classic(api, "-t", "again", ctx)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" ---> Using cache") == 6, done.stdout  # every step after FROM
    assert image_id(api, "again") == image_id(api, "cached")
    # a changed source: that COPY and what follows run again, through the API as through the CLI
    with open(os.path.join(ctx, "app.txt"), "w") as f:
        f.write("changed\n")
    done = classic(api, "-t", "changed", ctx)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(" ---> Using cache") == 2, done.stdout
    assert api.berth.ok("run", "--rm", "--network", "none", "changed") == "changed\n"
    assert "Using cache" in api.berth.ok("build", "-t", "changed-cli", ctx).split("Step 5/8")[0]


def test_docker_py_builds(api, tmp_path):
    ctx = context(tmp_path)
    client = docker_py.DockerClient(base_url=api.url)
    image, logs = client.images.build(path=ctx, tag="py:1", buildargs={"GREETING": "from-py"}, labels={"k": "v"},
                                      rm=True, forcerm=True)
    logs = list(logs)
    assert image.id == image_id(api, "py:1")
    assert "py:1" in image.tags
    assert any("Step 1/8 : FROM busybox" in entry.get("stream", "") for entry in logs)  # --label: one more
    # in dockerd's order: the ID (aux), then "Successfully built", then the tags
    streams = [entry.get("stream") or entry for entry in logs]
    at = streams.index({"aux": {"ID": image.id}})
    assert streams[at + 1:] == [f"Successfully built {image.id[7:19]}\n", "Successfully tagged py:1\n"], streams
    assert "GREETING=from-py" in image.attrs["Config"]["Env"] and image.attrs["Config"]["Labels"]["k"] == "v"
    # a gzip-compressed context, a Dockerfile in a subdirectory, a target stage, no network for RUN
    ctx = context(tmp_path, "FROM busybox AS one\nRUN echo one > /stage\nFROM one AS two\nRUN echo two >> /stage\n",
                  sub__Build=("FROM busybox AS one\nRUN echo one > /stage\n"
                              "FROM one AS two\nRUN echo two >> /stage\nFROM two\nRUN false\n"))
    image, _ = client.images.build(path=ctx, dockerfile="sub/Build", target="two", gzip=True, tag="py:2",
                                   network_mode="none")
    assert api.berth.ok("run", "--rm", "--network", "none", "py:2", "cat", "/stage") == "one\ntwo\n"
    client.close()


def test_build_errors_as_docker_reports_them(api, tmp_path):
    ctx = context(tmp_path, "FROM busybox\nFROBNICATE now\n")
    done = classic(api, ctx)
    assert done.returncode == 1
    # the request's error, as dockerd answers one before any output (its wording: "parse error line 2"
    # in 20.10, "parse error on line 2" since)
    assert "Error response from daemon: dockerfile parse error" in done.stderr, done.stderr
    assert "line 2: unknown instruction: FROBNICATE" in done.stderr, done.stderr
    # a failing RUN: its output, then docker's message and its exit code; no container left
    ctx = context(tmp_path, "FROM busybox\nRUN echo about to fail && exit 3\n")
    done = classic(api, ctx)
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "about to fail" in done.stdout
    assert "The command '/bin/sh -c echo about to fail && exit 3' returned a non-zero code: 3" in done.stderr
    assert api.berth.ok("ps", "-aq") == ""
    ctx = context(tmp_path, "FROM busybox\nCOPY missing.txt /\n")
    done = classic(api, ctx)
    assert done.returncode == 1 and "missing.txt" in done.stderr, done.stderr
    # docker-py raises BuildError with docker's message
    (tmp_path / "ctx" / "Dockerfile.fail").write_text("FROM busybox\nRUN exit 3\n")
    client = docker_py.DockerClient(base_url=api.url)
    with pytest.raises(docker_py.errors.BuildError, match="returned a non-zero code: 3"):
        client.images.build(path=str(tmp_path / "ctx"), dockerfile="Dockerfile.fail")
    client.close()
    assert api.berth.ok("ps", "-aq") == ""


def test_bad_query_is_a_400(api):
    for query, says in (("t=Not_Valid:Tag", "invalid reference format"),
                        ("buildargs=%7Bnot-json", "invalid JSON in query parameter buildargs"),
                        ("buildargs=%5B1%5D", "invalid buildargs"),
                        ("networkmode=container:x", 'network mode "container:x"'),
                        ("remote=https://example.com/ctx.tar", "remote context")):
        status, _, body = request(api, "POST", f"/v1.41/build?{query}", body=_tar(("Dockerfile", b"FROM busybox\n")),
                                  headers={"Content-Type": "application/x-tar"})
        assert status in (400, 501), (query, status, body)
        assert says in json.loads(body)["message"], (query, body)
    status, _, body = request(api, "POST", "/build?dockerfile=nope", body=_tar(("Dockerfile", b"FROM busybox\n")))
    assert status in (400, 500) and "Cannot locate specified Dockerfile: nope" in json.loads(body)["message"]
    status, _, body = request(api, "POST", "/build", body=b"this is not a tar archive" * 40)
    assert status in (400, 500) and "tar" in json.loads(body)["message"]
    # a member cut short is an error (only a missing padding after whole data is docker's CLI's way)
    cut = _tar(("Dockerfile", b"FROM busybox\n"), ("big", b"x" * 5000))[:512 * 3 + 1000]
    status, _, body = request(api, "POST", "/build", body=cut)
    assert status == 400 and "invalid tar archive" in json.loads(body)["message"], body


def _tar(*members) -> bytes:
    """A tar of (name, bytes) files and TarInfo entries, in that order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
                continue
            info = tarfile.TarInfo(member[0])
            info.size = len(member[1])
            tar.addfile(info, io.BytesIO(member[1]))
    return buf.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def test_hostile_context_writes_nothing_outside(api, tmp_path):
    """A context tar is the client's: members that climb out, or write through a symlink they
    planted, are refused; a Dockerfile that is a symlink to a host file is resolved inside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched\n")
    dockerfile = ("Dockerfile", b"FROM busybox\n")
    attacks = [
        _tar(dockerfile, ("../../../../../../" + str(outside)[1:] + "/climbed", b"x")),
        _tar(dockerfile, _symlink("link", str(outside)), ("link/through", b"x")),
        _tar(dockerfile, _symlink("dir", "/"), ("dir/" + str(outside)[1:] + "/through-root", b"x")),
    ]
    for body in attacks:
        status, _, answer = request(api, "POST", "/build?t=evil", body=body)
        assert status == 400 and b"invalid tar archive" in answer, (status, answer)
    # a file over a planted symlink replaces the link, never writes through it
    body = _tar(("Dockerfile", b"FROM busybox\nCOPY victim /\n"), _symlink("victim", str(victim)),
                ("victim", b"overwritten\n"))
    status, _, answer = request(api, "POST", "/build?t=replaced", body=body)
    assert status == 200 and b'"aux"' in answer, answer
    assert os.listdir(outside) == [] and victim.read_text() == "untouched\n"
    # a Dockerfile that is a symlink to a host file is read inside the context, as dockerd does
    body = _tar(_symlink("Dockerfile", "/etc/shadow"))
    status, _, answer = request(api, "POST", "/build", body=body)
    assert status in (400, 500) and b"Cannot locate specified Dockerfile" in answer, answer
    assert b"root:" not in answer
    # nothing staged is left behind
    staging = os.path.join(api.berth.root, "image", "tmp")
    assert not [name for name in os.listdir(staging) if name.startswith("build-")]
    assert "evil" not in api.berth.ok("images")


def test_dockerfile_outside_the_context(api, tmp_path):
    """docker's CLI sends a -f Dockerfile from outside the context inside the tar, under a random
    .dockerfile.<hex> name, and names it in ?dockerfile."""
    ctx = context(tmp_path)
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nCOPY . /ctx\n")
    done = classic(api, "-f", str(outside), "-t", "outside", ctx)
    assert done.returncode == 0, done.stderr
    # the .dockerignore the CLI adds for it leaves the sent Dockerfile (and itself) out of COPY
    listing = api.berth.ok("run", "--rm", "--network", "none", "outside", "find", "/ctx").split()
    assert sorted(listing) == ["/ctx", "/ctx/Dockerfile", "/ctx/app.txt"]


def test_plain_docker_build_picks_the_classic_builder(api, tmp_path):
    """berth's /_ping says Builder-Version 1, as a dockerd without BuildKit does: docker's CLI then
    builds with the classic builder without being told (DOCKER_BUILDKIT unset)."""
    env = {k: v for k, v in api.env.items() if k != "DOCKER_BUILDKIT"}
    done = subprocess.run([ApiService.DOCKER_28, "build", "-q", "-t", "plain", context(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == image_id(api, "plain")


def test_buildkit_clients_are_told_to_use_the_classic_builder(api, tmp_path):
    done = subprocess.run([ApiService.DOCKER_20, "build", "-t", "bk", context(tmp_path)], capture_output=True,
                          text=True, env={**api.env, "DOCKER_BUILDKIT": "1"}, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode != 0
    assert "classic builder" in done.stderr and "DOCKER_BUILDKIT=0" in done.stderr, done.stderr
    assert "bk" not in api.berth.ok("images", "--format", "{{.Repository}}").split()


def test_a_client_gone_cancels_its_build(api, tmp_path):
    """dockerd cancels a build whose client hangs up: its step's container is killed and removed,
    nothing is tagged; berth's staging copy of the context goes too."""
    import socket

    from conftest import wait_for

    body = _tar(("Dockerfile", b"FROM busybox\nRUN echo $((6*7)) && sleep 60\n"))  # says 42 once running
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(api.sock)
    sock.sendall(b"POST /build?t=gone&networkmode=none HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    while b'"42\\n"' not in seen:
        chunk = sock.recv(4096)
        assert chunk, seen
        seen += chunk
    assert api.berth.ok("ps", "-aq").strip()  # the RUN step's container
    sock.close()
    wait_for(lambda: api.berth.ok("ps", "-aq") == "", 30, "the cancelled step's container to go")
    staging = os.path.join(api.berth.root, "image", "tmp")
    wait_for(lambda: not [n for n in os.listdir(staging) if n.startswith("build-")], 30, "the context to go")
    assert "gone" not in api.berth.ok("images", "--format", "{{.Repository}}").split()
