"""pull, push, login, logout and run's pull against Debian's docker-registry (distribution 2.8)
started here on 127.0.0.1: without auth, with htpasswd Basic auth, with token auth (a token
server this test runs on loopback), and over TLS with a CA this test makes. Nothing here
contacts any other registry."""

import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.request

import pytest

from conftest import refused, require_peer, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int, tls: bool = False) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Registry:
    """One docker-registry process on 127.0.0.1 with its own config and storage."""

    def __init__(self, base: str, auth: str = "", tls: tuple | None = None, port: int | None = None):
        if shutil.which("docker-registry") is None:
            subprocess.run(["apt-get", "install", "-y", "-qq", "docker-registry", "apache2-utils"],
                           check=True, capture_output=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        self.base = base
        self.port = port or _free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = os.path.join(base, "storage")
        os.makedirs(self.storage, exist_ok=True)
        lines = ["version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
                 f"    rootdirectory: {self.storage}", "  delete:", "    enabled: true", "http:",
                 f"  addr: 127.0.0.1:{self.port}"]
        if tls:
            lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
            if len(tls) > 2:  # client certificates signed by this CA required
                lines += ["    clientcas:", f"      - {tls[2]}"]
        lines += auth.splitlines()
        self.config = os.path.join(base, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(["docker-registry", "serve", self.config], stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(self.base, "registry.log"), "ab"))
        wait_for(lambda: _answers(self.port) or self.process.poll() is not None, what="docker-registry")
        assert self.process.poll() is None, open(os.path.join(self.base, "registry.log")).read()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def blob_path(self, digest: str) -> str:
        hexdigest = digest.partition(":")[2]
        return os.path.join(self.storage, "docker/registry/v2/blobs/sha256", hexdigest[:2], hexdigest, "data")

    def url(self, path: str) -> str:
        return f"http://{self.host}/v2/{path}"


@contextlib.contextmanager
def registry(tmp_path, **kw):
    reg = Registry(str(tmp_path / f"registry-{os.urandom(3).hex()}"), **kw)
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def plain(tmp_path):
    with registry(tmp_path) as reg:
        yield reg


def _env(tmp_path) -> dict:
    """A DOCKER_CONFIG of the test's own: credentials never touch the user's."""
    config = tmp_path / "docker-config"
    config.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "DOCKER_CONFIG": str(config)}


def _repo_of_store(b) -> dict:
    with open(os.path.join(b.root, "image", "index.json")) as f:
        return json.load(f)


# -- no auth ---------------------------------------------------------------------------------

def test_push_then_pull_round_trip_and_run_pulls_what_is_missing(busybox, fresh, plain):
    name = f"{plain.host}/test/bb:v1"
    busybox.ok("tag", "busybox", name)
    out = busybox.ok("push", name)
    assert out.startswith(f"The push refers to repository [{plain.host}/test/bb]\n")
    assert ": Pushed\n" in out and "v1: digest: sha256:" in out
    again = busybox.ok("push", name)
    assert ": Layer already exists\n" in again
    busybox.ok("tag", "busybox", f"{plain.host}/other/bb:v2")
    assert ": Mounted from test/bb\n" in busybox.ok("push", f"{plain.host}/other/bb:v2")
    image_id = busybox.ok("images", "-q", "--no-trunc", "busybox").strip()

    out = fresh.ok("pull", name)
    lines = out.splitlines()
    assert lines[0] == "v1: Pulling from test/bb"
    assert any(line.endswith(": Pull complete") for line in lines)
    assert lines[-3].startswith("Digest: sha256:")
    assert lines[-2] == f"Status: Downloaded newer image for {name}"
    assert lines[-1] == name
    assert fresh.ok("images", "-q", "--no-trunc", name).strip() == image_id
    assert fresh.ok("run", "--rm", "--network", "none", name, "echo", "pulled") == "pulled\n"
    out = fresh.ok("pull", name)
    assert f"Status: Image is up to date for {name}" in out
    assert fresh.ok("pull", "-q", name) == name + "\n"

    # a second repository of the same layer: "Already exists", nothing downloaded
    out = fresh.ok("pull", f"{plain.host}/other/bb:v2")
    assert ": Already exists\n" in out

    # run and create pull what is missing; --pull never refuses; --pull always pulls
    fresh.ok("rmi", name, f"{plain.host}/other/bb:v2")
    result = fresh("run", "--rm", "--network", "none", name, "echo", "ran")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ran\n"
    assert f"Unable to find image '{name}' locally\n" in result.stderr
    assert "Status: Downloaded newer image" in result.stderr
    fresh.fails(125, "run", "--rm", "--pull", "never", f"{plain.host}/other/bb:v2", "true",
                says=f"No such image: {plain.host}/other/bb:v2")
    result = fresh("run", "--rm", "-q", "--network", "none", "--pull", "always", name, "echo", "quiet")
    assert (result.returncode, result.stdout) == (0, "quiet\n")
    assert "Pulling" not in result.stderr


def test_pull_by_digest_and_errors(busybox, fresh, plain):
    name = f"{plain.host}/test/bb:v1"
    busybox.ok("tag", "busybox", name)
    digest = busybox.ok("push", name).rsplit("digest: ", 1)[1].split()[0]
    fresh.ok("pull", name)
    inspect = json.loads(fresh.ok("image", "inspect", name))[0]
    assert (inspect["RepoTags"], inspect["RepoDigests"]) == ([name], [f"{plain.host}/test/bb@{digest}"])
    assert fresh.ok("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}") == \
        f"{plain.host}/test/bb v1 {digest}\n"
    assert fresh.ok("rmi", name).splitlines()[:2] == [f"Untagged: {name}", f"Untagged: {plain.host}/test/bb@{digest}"]
    assert fresh.ok("images", "-aq") == ""
    out = fresh.ok("pull", f"{plain.host}/test/bb@{digest}")
    assert out.splitlines()[-1] == f"{plain.host}/test/bb@{digest}"
    assert fresh.ok("images", "--format", "{{.Repository}} {{.Tag}}") == f"{plain.host}/test/bb <none>\n"
    inspect = json.loads(fresh.ok("image", "inspect", f"{plain.host}/test/bb@{digest}"))[0]
    assert (inspect["RepoTags"], inspect["RepoDigests"]) == ([], [f"{plain.host}/test/bb@{digest}"])
    assert fresh.ok("run", "--rm", "--network", "none", f"{plain.host}/test/bb@{digest}", "echo", "ok") == "ok\n"
    fresh.fails(1, "pull", f"{plain.host}/test/bb:nosuch",
                says=f"manifest for {plain.host}/test/bb:nosuch not found: manifest unknown")
    fresh.fails(1, "pull", "127.0.0.1:9/x", says="connection refused")
    fresh.fails(1, "pull", "Bad/Name", says="invalid reference format")
    fresh.fails(1, "push", f"{plain.host}/test/nothere:1",
                says=f"An image does not exist locally with the tag: {plain.host}/test/nothere")


def _tar_gz(files: dict) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _upload(reg: Registry, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    start = urllib.request.urlopen(urllib.request.Request(reg.url(f"{repo}/blobs/uploads/"), method="POST"))
    location = start.headers["Location"]
    location = location if location.startswith("http") else f"http://{reg.host}{location}"
    put = urllib.request.Request(location + ("&" if "?" in location else "?") + "digest=" + digest, data=data,
                                 method="PUT", headers={"Content-Type": "application/octet-stream"})
    urllib.request.urlopen(put).close()
    return digest


def _put_manifest(reg: Registry, repo: str, ref: str, manifest: dict, media_type: str) -> tuple[str, int]:
    data = json.dumps(manifest).encode()
    urllib.request.urlopen(urllib.request.Request(reg.url(f"{repo}/manifests/{ref}"), data=data, method="PUT",
                                                  headers={"Content-Type": media_type})).close()
    return "sha256:" + hashlib.sha256(data).hexdigest(), len(data)


def _image(reg: Registry, repo: str, arch: str, layer_tar: bytes, compress=gzip.compress,
           layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> tuple[str, int, str]:
    """An OCI image made by hand in the registry: (manifest digest, size, config digest)."""
    blob = compress(layer_tar)
    layer = _upload(reg, repo, blob)
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/hello"]},
                         "rootfs": {"type": "layers",
                                    "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}}).encode()
    config_digest = _upload(reg, repo, config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                           "size": len(config)},
                "layers": [{"mediaType": layer_type, "digest": layer, "size": len(blob)}]}
    digest, size = _put_manifest(reg, repo, digest_tag(arch), manifest, manifest["mediaType"])
    return digest, size, config_digest


def digest_tag(arch: str) -> str:
    return "only-" + arch


def test_an_index_of_two_platforms_and_zstd_and_plain_layers(berth, plain):
    amd = _image(plain, "multi", "amd64", _tar_gz({"which": b"amd64\n"}))
    arm = _image(plain, "multi", "arm64", _tar_gz({"which": b"arm64\n"}))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm[0], "size": arm[1],
         "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd[0], "size": amd[1],
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    _put_manifest(plain, "multi", "both", index, index["mediaType"])
    berth.ok("pull", f"{plain.host}/multi:both")
    assert berth.ok("images", "-q", "--no-trunc", f"{plain.host}/multi:both").strip() == amd[2]
    berth.ok("pull", "--platform", "linux/arm64", f"{plain.host}/multi:both")
    assert berth.ok("image", "inspect", "-f", "{{.Architecture}}", f"{plain.host}/multi:both") == "arm64\n"
    berth.fails(1, "pull", "--platform", "linux/s390x", f"{plain.host}/multi:both",
                says="no matching manifest for linux/s390x in the manifest list entries")

    import zstandard

    _image(plain, "zstd", "amd64", _tar_gz({"which": b"zstd\n"}), zstandard.ZstdCompressor().compress,
           "application/vnd.oci.image.layer.v1.tar+zstd")
    _image(plain, "plain", "amd64", _tar_gz({"which": b"plain\n"}), lambda data: data,
           "application/vnd.oci.image.layer.v1.tar")
    for repo in ("zstd", "plain"):
        berth.ok("pull", f"{plain.host}/{repo}:{digest_tag('amd64')}")
        inspect = json.loads(berth.ok("image", "inspect", f"{plain.host}/{repo}:{digest_tag('amd64')}"))[0]
        layer = inspect["GraphDriver"]["Data"]["LowerDir"]
        with open(os.path.join(layer, "which")) as f:
            assert f.read() == repo + "\n"


def test_a_tampered_blob_is_refused_and_nothing_is_stored(busybox, fresh, plain):
    name = f"{plain.host}/test/tampered:1"
    busybox.ok("tag", "busybox", name)
    busybox.ok("push", name)
    manifest = json.loads(urllib.request.urlopen(urllib.request.Request(
        plain.url("test/tampered/manifests/1"),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})).read())
    layer = manifest["layers"][0]["digest"]
    with open(plain.blob_path(layer), "r+b") as f:
        f.seek(100)
        f.write(b"tampered")
    fresh.fails(1, "pull", name, says=f"filesystem layer verification failed for digest {layer}")
    assert _repo_of_store(fresh)["manifests"] == []
    assert os.listdir(os.path.join(fresh.root, "image", "layers")) == []
    assert os.listdir(os.path.join(fresh.root, "image", "blobs", "sha256")) == []
    leftovers = [n for n in os.listdir(os.path.join(fresh.root, "image", "tmp")) if not n.startswith("download-")]
    assert leftovers == []
    assert not any(n.startswith("download-") for n in os.listdir(os.path.join(fresh.root, "image", "tmp")))


class Relay:
    """A loopback HTTP relay for GET and HEAD: in front of a registry (`target_port`: berth
    talks to it as to the registry) or as a forward proxy (absolute URIs; CONNECT refused). It
    records the paths and Range headers it sees; while `cut` is set it sends only the first
    `cut` bytes of a blob body and drops the connection (a registry dying mid-download)."""

    def __init__(self, target_port: int | None = None):
        self.cut = 0
        self.seen = []
        self.ranges = []
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_CONNECT(self):
                self.send_response(405)
                self.end_headers()

            def do_HEAD(self):
                self.forward()

            def do_GET(self):
                self.forward()

            def forward(self):
                relay.seen.append(self.path)
                if "/blobs/" in self.path:
                    relay.ranges.append(self.headers.get("Range"))
                url = f"http://127.0.0.1:{target_port}{self.path}" if target_port else self.path
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "proxy-connection")}
                try:
                    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers,
                                                                             method=self.command))
                except urllib.error.HTTPError as err:
                    response = err
                body = response.read() if self.command != "HEAD" else b""
                self.send_response(response.status)
                for key, value in response.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", response.headers.get("Content-Length", str(len(body))))
                self.end_headers()
                if relay.cut and "/blobs/" in self.path and len(body) > relay.cut:
                    self.wfile.write(body[:relay.cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_registry_dying_mid_download_is_a_clean_error_and_the_next_pull_resumes(busybox, fresh, plain):
    busybox.ok("tag", "busybox", f"{plain.host}/test/cut:1")
    busybox.ok("push", f"{plain.host}/test/cut:1")
    proxy = Relay(plain.port)
    try:
        proxy.cut = 300_000
        name = f"127.0.0.1:{proxy.port}/test/cut:1"
        err = fresh.fails(1, "pull", name, says="failed to fetch layer sha256:")
        assert "Traceback" not in err
        assert _repo_of_store(fresh)["manifests"] == []
        partial = [n for n in os.listdir(os.path.join(fresh.root, "image", "tmp")) if n.startswith("download-")]
        assert len(partial) == 1
        assert os.path.getsize(os.path.join(fresh.root, "image", "tmp", partial[0])) == 300_000
        proxy.cut = 0
        proxy.ranges.clear()
        fresh.ok("pull", name)
        assert "bytes=300000-" in proxy.ranges
        assert fresh.ok("run", "--rm", "--network", "none", name, "echo", "resumed") == "resumed\n"
    finally:
        proxy.close()


# -- Basic auth, token auth, login/logout ------------------------------------------------------

def htpasswd_auth(tmp_path) -> str:
    """docker-registry's auth section for Basic auth with one user, alice:s3cret."""
    line = subprocess.run(["htpasswd", "-Bbn", "alice", "s3cret"], capture_output=True, text=True,
                          check=True).stdout.strip()
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(line + "\n")
    return f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {htpasswd}"


def test_basic_auth_login_push_pull_logout(busybox, fresh, tmp_path):
    auth = htpasswd_auth(tmp_path)
    env = _env(tmp_path)
    with registry(tmp_path, auth=auth) as reg:
        name = f"{reg.host}/private/bb:1"
        busybox.ok("tag", "busybox", name)
        busybox.fails(1, "push", name, says="no basic auth credentials", env=env)
        busybox.fails(1, "login", "-u", "alice", "--password-stdin", reg.host, input="wrong\n", env=env,
                      says="failed with status: 401 Unauthorized")
        assert not os.path.exists(os.path.join(env["DOCKER_CONFIG"], "config.json"))
        result = busybox("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret\n", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Login Succeeded\n"
        assert "stored unencrypted" in result.stderr and "s3cret" not in result.stderr
        config_path = os.path.join(env["DOCKER_CONFIG"], "config.json")
        assert os.stat(config_path).st_mode & 0o777 == 0o600
        with open(config_path) as f:
            assert json.load(f)["auths"][reg.host]["auth"] == base64.b64encode(b"alice:s3cret").decode()
        busybox.ok("push", name, env=env)
        fresh.ok("pull", name, env=env)
        assert fresh.ok("logout", reg.host, env=env) == f"Removing login credentials for {reg.host}\n"
        assert fresh.ok("logout", reg.host, env=env) == f"Not logged in to {reg.host}\n"
        err = fresh.fails(1, "pull", name, env=env, says="no basic auth credentials")
        assert "s3cret" not in err


class TokenServer:
    """A token server on loopback for distribution's token auth: Basic credentials alice:s3cret
    get a JWT (RS256, x5c header, signed with openssl) granting what the scope asks; anyone else
    gets a token granting nothing."""

    def __init__(self, directory: str):
        self.key = os.path.join(directory, "token.key")
        self.cert = os.path.join(directory, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out",
                        self.cert, "-days", "2", "-subj", "/CN=berth-test-token"], check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"], check=True,
                             capture_output=True).stdout
        self.x5c = base64.b64encode(der).decode()
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlparse

                query = parse_qs(urlparse(self.path).query)
                auth = self.headers.get("Authorization", "")
                server.requests.append((query, auth))
                if auth and auth != "Basic " + base64.b64encode(b"alice:s3cret").decode():
                    self.send_response(401)
                    self.end_headers()
                    return
                access = []
                for scope in query.get("scope", []) if auth else []:
                    kind, name, actions = scope.split(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                body = json.dumps({"token": server.token(query.get("service", [""])[0], access)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, service: str, access: list) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = b64(json.dumps({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}).encode())
        claims = b64(json.dumps({"iss": "berth-test-issuer", "sub": "alice", "aud": service, "exp": now + 600,
                                 "nbf": now - 60, "iat": now, "jti": os.urandom(8).hex(),
                                 "access": access}).encode())
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                                   input=f"{header}.{claims}".encode(), capture_output=True, check=True).stdout
        return f"{header}.{claims}.{b64(signature)}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_token_auth(busybox, fresh, tmp_path):
    tokens = TokenServer(str(tmp_path))
    auth = (f"auth:\n  token:\n    realm: http://127.0.0.1:{tokens.port}/token\n    service: berth-test\n"
            f"    issuer: berth-test-issuer\n    rootcertbundle: {tokens.cert}")
    env = _env(tmp_path)
    try:
        with registry(tmp_path, auth=auth) as reg:
            name = f"{reg.host}/private/bb:1"
            busybox.ok("tag", "busybox", name)
            busybox.fails(1, "push", name, env=env, says="unauthorized")
            busybox.fails(1, "login", "-u", "alice", "--password-stdin", reg.host, input="nope", env=env,
                          says="unauthorized: incorrect username or password")
            busybox.ok("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret", env=env)
            busybox.ok("push", name, env=env)
            assert any("repository:private/bb:pull,push" in q.get("scope", []) for q, _ in tokens.requests)
            out = fresh.ok("pull", name, env=env)
            assert "Status: Downloaded newer image" in out
            fresh.ok("logout", reg.host, env=env)
            fresh.ok("rmi", name)
            err = fresh.fails(1, "pull", name, env=env, says="unauthorized")
            assert "s3cret" not in err
    finally:
        tokens.close()


# -- TLS ------------------------------------------------------------------------------------

def _make_ca_and_cert(directory: str, name: str) -> tuple[str, str, str]:
    ca_key, ca = os.path.join(directory, f"{name}-ca.key"), os.path.join(directory, f"{name}-ca.crt")
    key, csr, cert = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", f"/CN={name} test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", ext)
    return ca, cert, key


def test_tls_with_a_ca_in_certs_d(busybox, fresh, tmp_path):
    ca, cert, key = _make_ca_and_cert(str(tmp_path), "good")
    other_ca, _, _ = _make_ca_and_cert(str(tmp_path), "other")
    with registry(tmp_path, tls=(cert, key)) as reg:
        name = f"{reg.host}/secure/bb:1"
        for b in (busybox, fresh):
            certs = os.path.join(os.path.dirname(b.config_file), "certs.d", reg.host)
            os.makedirs(certs)
            shutil.copy(ca, os.path.join(certs, "ca.crt"))
        busybox.ok("tag", "busybox", name)
        busybox.ok("push", name)
        fresh.ok("pull", name)
        fresh.ok("rmi", name)
        shutil.copy(other_ca, os.path.join(os.path.dirname(fresh.config_file), "certs.d", reg.host, "ca.crt"))
        fresh.fails(1, "pull", name, says="certificate signed by unknown authority")
        assert _repo_of_store(fresh)["manifests"] == []


def test_tls_client_certificates_from_certs_d(busybox, tmp_path):
    ca, cert, key = _make_ca_and_cert(str(tmp_path), "server")
    ca_key = os.path.join(str(tmp_path), "server-ca.key")
    client_key, client_csr, client_cert = (str(tmp_path / f"client.{ext}") for ext in ("key", "csr", "cert"))
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", client_key, "-out", client_csr, "-subj", "/CN=berth")
    run("x509", "-req", "-in", client_csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", client_cert,
        "-days", "2")
    with registry(tmp_path, tls=(cert, key, ca)) as reg:
        name = f"{reg.host}/mutual/bb:1"
        certs = os.path.join(os.path.dirname(busybox.config_file), "certs.d", reg.host)
        os.makedirs(certs)
        shutil.copy(ca, os.path.join(certs, "ca.crt"))
        busybox.ok("tag", "busybox", name)
        busybox.fails(1, "push", name, says="tls: sslv3 alert bad certificate")  # no client certificate
        shutil.copy(client_cert, os.path.join(certs, "client.cert"))
        busybox.fails(1, "push", name, says="missing key client.key for client certificate client.cert")
        shutil.copy(client_key, os.path.join(certs, "client.key"))
        busybox.ok("push", name)


def test_registry_mirror_serves_docker_hub_names(busybox, fresh, plain):
    busybox.ok("tag", "busybox", f"{plain.host}/library/mirrored:1")
    busybox.ok("push", f"{plain.host}/library/mirrored:1")
    fresh.configure(**{"registry-mirrors": [f"http://{plain.host}"]})
    out = fresh.ok("pull", "mirrored:1")
    assert out.splitlines()[-1] == "docker.io/library/mirrored:1"
    assert fresh.ok("images", "--format", "{{.Repository}}:{{.Tag}}") == "mirrored:1\n"


# -- interop ----------------------------------------------------------------------------------

def test_skopeo_and_podman_pull_what_berth_pushed_and_berth_pulls_what_podman_pushed(busybox, fresh, plain):
    skopeo, podman = require_peer("skopeo"), require_peer("podman")
    name = f"{plain.host}/interop/bb:1"
    busybox.ok("tag", "busybox", name)
    busybox.ok("push", name)
    inspect = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{name}"], capture_output=True,
                             text=True, timeout=120)
    assert inspect.returncode == 0, inspect.stderr
    assert json.loads(inspect.stdout)["Architecture"] == "amd64"
    pulled = subprocess.run([podman, "pull", "-q", "--tls-verify=false", name], capture_output=True, text=True,
                            timeout=120)
    try:
        assert pulled.returncode == 0, pulled.stderr
        ran = subprocess.run([podman, "run", "--rm", "--pull", "never", name, "echo", "podman-ran"],
                             capture_output=True, text=True, timeout=120)
        assert ran.stdout == "podman-ran\n", ran.stderr
    finally:
        subprocess.run([podman, "rmi", "-f", name], capture_output=True, timeout=120)
    from_podman = f"{plain.host}/interop/from-podman:1"
    pushed = subprocess.run([podman, "push", "-q", "--tls-verify=false", "busybox:latest", from_podman],
                            capture_output=True, text=True, timeout=120)
    assert pushed.returncode == 0, pushed.stderr
    fresh.ok("pull", from_podman)
    assert fresh.ok("run", "--rm", "--network", "none", from_podman, "echo", "berth-ran") == "berth-ran\n"


def test_docker_pulls_what_berth_pushed_and_berth_pulls_what_docker_pushed(busybox, fresh, plain):
    docker = require_peer("docker")
    name, from_docker = f"{plain.host}/interop/for-docker:1", f"{plain.host}/interop/from-docker:1"
    busybox.ok("tag", "busybox", name)
    busybox.ok("push", name)
    try:
        pulled = subprocess.run([docker, "pull", "-q", name], capture_output=True, text=True, timeout=120)
        assert pulled.returncode == 0, pulled.stderr
        ran = subprocess.run([docker, "run", "--rm", "--pull", "never", name, "echo", "docker-ran"],
                             capture_output=True, text=True, timeout=120)
        assert ran.stdout == "docker-ran\n", ran.stderr
        subprocess.run([docker, "tag", "busybox:latest", from_docker], check=True, timeout=60)
        pushed = subprocess.run([docker, "push", from_docker], capture_output=True, text=True, timeout=120)
        assert pushed.returncode == 0, pushed.stderr
    finally:
        subprocess.run([docker, "rmi", "-f", name, from_docker], capture_output=True, timeout=120)
    fresh.ok("pull", from_docker)
    assert fresh.ok("run", "--rm", "--network", "none", from_docker, "echo", "berth-ran") == "berth-ran\n"


def test_bad_input_is_refused(berth, plain, tmp_path):
    berth.fails(1, "login", "-u", "x", "--password-stdin", input="", says="Password Required",
                env=_env(tmp_path))
    berth.fails(1, "login", "--password-stdin", plain.host, input="x", says="Must provide --username",
                env=_env(tmp_path))
    refused(berth("pull", f"{plain.host}/nothing:1"), 1, "not found")


# -- a hostile registry -------------------------------------------------------------------------

class Scripted:
    """A loopback HTTP server answering /v2/ paths from a table: path -> list of answers
    (status, headers, body), the last one repeated. Stands in for a registry that lies."""

    def __init__(self):
        self.routes = {"/v2/": [(200, {}, b"{}")]}
        self.hits = {}
        scripted = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self.answer(head=True)

            def do_GET(self):
                self.answer()

            def answer(self, head=False):
                answers = scripted.routes.get(self.path.split("?")[0])
                count = scripted.hits.get(self.path, 0)
                scripted.hits[self.path] = count + 1
                if answers is None:
                    status, headers, body = 404, {"Content-Type": "application/json"}, \
                        b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
                else:
                    status, headers, body = answers[min(count, len(answers) - 1)]
                self.send_response(status)
                headers = dict(headers)
                headers.setdefault("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def image(self, repo: str, layer_blob: bytes, diff_id: str, layer_size: int | None = None,
              config_type: str = "application/vnd.oci.image.config.v1+json") -> None:
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        layer_digest = "sha256:" + hashlib.sha256(layer_blob).hexdigest()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": config_type, "digest": config_digest, "size": len(config)},
                               "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                           "digest": layer_digest,
                                           "size": len(layer_blob) if layer_size is None else layer_size}]})
        self.routes[f"/v2/{repo}/manifests/1"] = [
            (200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, manifest.encode())]
        self.routes[f"/v2/{repo}/blobs/{config_digest}"] = [(200, {}, config)]
        self.routes[f"/v2/{repo}/blobs/{layer_digest}"] = [(200, {}, layer_blob)]
        return layer_digest

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_lying_registry_is_refused_cleanly(berth):
    lying = Scripted()
    try:
        host = lying.host
        lying.routes["/v2/schema1/manifests/1"] = [(200, {"Content-Type":
                                                          "application/vnd.docker.distribution.manifest.v1+prettyjws"},
                                                    b'{"schemaVersion": 1, "name": "schema1", "fsLayers": []}')]
        lying.routes["/v2/huge/manifests/1"] = [(200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                                                 b" " * (5 << 20))]
        lying.routes["/v2/loop/manifests/1"] = [(302, {"Location": f"http://{host}/v2/loop/manifests/1"}, b"")]
        tar = _tar_gz({"hello": b"hi\n"})
        diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
        lying.image("mediatype", gzip.compress(tar), diff_id, config_type="application/x-not-a-config")
        lying.image("longer", gzip.compress(tar), diff_id, layer_size=10)
        digest = lying.image("flaky", gzip.compress(tar), diff_id)
        lying.routes[f"/v2/flaky/blobs/{digest}"][:0] = [(503, {}, b""), (500, {}, b"")]
        lying.image("wrongdiff", gzip.compress(_tar_gz({"other": b"x"})), diff_id)
        escaping = _tar_gz({"../escape": b"out\n"})
        lying.image("escape", gzip.compress(escaping), "sha256:" + hashlib.sha256(escaping).hexdigest())
        cases = [
            ("schema1", "schema 1 is not supported"),
            ("huge", "manifest is too large"),
            ("loop", "stopped after 10 redirects"),
            ("mediatype", "unsupported media type 'application/x-not-a-config' for config"),
            ("longer", "the registry sent more than the layer's size"),
            ("wrongdiff", "diff ID mismatch"),
            ("escape", "path '../escape' escapes the layer"),
        ]
        for repo, says in cases:
            berth.fails(1, "pull", f"{host}/{repo}:1", says=says)
            assert _repo_of_store(berth)["manifests"] == []
            assert os.listdir(os.path.join(berth.root, "image", "layers")) == []
        out = berth.ok("pull", f"{host}/flaky:1")  # two 5xx answers, then the blob: retried with back-off
        assert "Pull complete" in out
    finally:
        lying.close()
    challenging = Scripted()
    try:
        challenging.routes["/v2/"] = [(401, {"WWW-Authenticate": 'Negotiate realm="x"'}, b"")]
        berth.fails(1, "pull", f"{challenging.host}/x:1", says="unsupported authentication challenge")
    finally:
        challenging.close()


def test_credential_helpers_and_docker_reads_what_berth_wrote(busybox, tmp_path):
    helper_dir = tmp_path / "bin"
    helper_dir.mkdir()
    store = tmp_path / "helper-store.json"
    helper = helper_dir / "docker-credential-berthtest"
    helper.write_text(f"""#!/opt/berth/venv/bin/python3
import json, sys
path = {str(store)!r}
try:
    data = json.load(open(path))
except FileNotFoundError:
    data = {{}}
action, given = sys.argv[1], sys.stdin.read()
if action == "store":
    entry = json.loads(given)
    data[entry["ServerURL"]] = entry
    json.dump(data, open(path, "w"))
elif action == "get":
    if given.strip() not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps(data[given.strip()]))
elif action == "erase":
    data.pop(given.strip(), None)
    json.dump(data, open(path, "w"))
""")
    helper.chmod(0o755)
    line = subprocess.run(["htpasswd", "-Bbn", "alice", "s3cret"], capture_output=True, text=True,
                          check=True).stdout.strip()
    (tmp_path / "htpasswd").write_text(line + "\n")
    env = _env(tmp_path)
    env["PATH"] = f"{helper_dir}:{env['PATH']}"
    with open(os.path.join(env["DOCKER_CONFIG"], "config.json"), "w") as f:
        json.dump({"credsStore": "berthtest"}, f)
    auth = f"auth:\n  htpasswd:\n    realm: berth-test\n    path: {tmp_path / 'htpasswd'}"
    with registry(tmp_path, auth=auth) as reg:
        result = busybox("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret", env=env)
        assert result.returncode == 0, result.stderr
        assert "unencrypted" not in result.stderr
        assert json.loads(store.read_text())[reg.host]["Secret"] == "s3cret"
        with open(os.path.join(env["DOCKER_CONFIG"], "config.json")) as f:
            assert "s3cret" not in f.read()
        busybox.ok("tag", "busybox", f"{reg.host}/helped/bb:1")
        busybox.ok("push", f"{reg.host}/helped/bb:1", env=env)
        busybox.ok("logout", reg.host, env=env)
        assert reg.host not in json.loads(store.read_text())

        # the docker CLI reads the config.json berth writes (auths, base64)
        plain_env = _env(tmp_path / "plain")
        busybox.ok("login", "-u", "alice", "--password-stdin", reg.host, input="s3cret", env=plain_env)
        docker = require_peer("docker")
        pulled = subprocess.run([docker, "pull", "-q", f"{reg.host}/helped/bb:1"], capture_output=True, text=True,
                                env=plain_env, timeout=120)
        try:
            assert pulled.returncode == 0, pulled.stderr
        finally:
            subprocess.run([docker, "rmi", "-f", f"{reg.host}/helped/bb:1"], capture_output=True, timeout=120)


def test_proxies_from_the_environment(busybox, fresh, plain, tmp_path):
    name = f"{plain.host}/proxied/bb:1"
    busybox.ok("tag", "busybox", name)
    busybox.ok("push", name)
    proxy = Relay()
    try:
        env = {**_env(tmp_path), "HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url, "NO_PROXY": ""}
        fresh.ok("pull", name, env=env)
        assert f"http://{plain.host}/v2/proxied/bb/manifests/1" in proxy.seen
        fresh.ok("rmi", name)
        proxy.seen.clear()
        fresh.ok("pull", name, env={**env, "NO_PROXY": "127.0.0.1"})
        assert proxy.seen == []
    finally:
        proxy.close()


def test_interactive_login_prompts_on_a_terminal(busybox, tmp_path):
    """`login REGISTRY` on a terminal asks for the username, then the password without echo."""
    import pty
    import select

    auth = htpasswd_auth(tmp_path)
    env = _env(tmp_path)
    with registry(tmp_path, auth=auth) as reg:
        master, slave = pty.openpty()
        proc = subprocess.Popen(busybox.cmd("login", reg.host), stdin=slave, stdout=slave, stderr=slave, env=env,
                                start_new_session=True)
        os.close(slave)
        seen = b""

        def read_until(words: bytes) -> None:
            nonlocal seen
            deadline = time.monotonic() + 30
            while words not in seen and time.monotonic() < deadline:
                if select.select([master], [], [], 1)[0]:
                    try:
                        seen += os.read(master, 4096)
                    except OSError:
                        break
            assert words in seen, seen

        try:
            read_until(b"Username: ")
            os.write(master, b"alice\n")
            read_until(b"Password: ")
            os.write(master, b"s3cret\n")
            read_until(b"Login Succeeded")
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        assert b"s3cret" not in seen  # the password is not echoed
        with open(os.path.join(env["DOCKER_CONFIG"], "config.json")) as f:
            assert json.load(f)["auths"][reg.host]["auth"] == base64.b64encode(b"alice:s3cret").decode()
