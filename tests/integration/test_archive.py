"""save and load: docker-archive (docker 25+'s combined layout, and the older one), OCI
archives, compression, digests checked, bad archives refused with nothing added, a killed
load leaving the store consistent, terminal progress, and the real docker, podman, skopeo
and umoci reading what berth writes (and berth reading what they write)."""

import fcntl
import gzip
import hashlib
import io
import json
import os
import pty
import re
import secrets
import signal
import struct
import subprocess
import tarfile
import termios

import pytest

from conftest import require_peer, wait_for

HEX64 = re.compile(r"^[0-9a-f]{64}$")
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(os.uname().machine, os.uname().machine)


# -- helpers ----------------------------------------------------------------------

def inspect(berth, ref: str) -> dict:
    found = json.loads(berth.ok("image", "inspect", ref))
    assert len(found) == 1
    return found[0]


def listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def store_snapshot(berth) -> dict:
    image = os.path.join(berth.root, "image")
    return {"images": berth.ok("images", "-a", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"),
            "blobs": listing(os.path.join(image, "blobs", "sha256")),
            "layers": listing(os.path.join(image, "layers")),
            "tmp": listing(os.path.join(image, "tmp"))}


def members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def config_for(layers: list[bytes], cmd=("sh",)) -> bytes:
    return canonical({"architecture": ARCH, "os": "linux", "created": "2020-09-13T12:26:40Z",
                      "config": {"Cmd": list(cmd)},
                      "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]}})


def write_archive(path, entries) -> str:
    """entries: name -> bytes, ("symlink", target), or ("dir",)."""
    with tarfile.open(path, "w") as tar:
        for name, value in entries.items():
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if isinstance(value, tuple):
                info.type = tarfile.SYMTYPE if value[0] == "symlink" else tarfile.DIRTYPE
                info.linkname = value[1] if value[0] == "symlink" else ""
                info.mode = 0o777 if value[0] == "symlink" else 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(value), 0o644
                tar.addfile(info, io.BytesIO(value))
    return str(path)


def old_docker_archive(path, layers: list[bytes], repo_tags, gzip_layers=False, config=None) -> tuple[str, str]:
    """docker < 25's layout: <v1 id>/layer.tar, <image id>.json, manifest.json; a layer used
    twice is a symlink to the first copy, as docker and podman write it. Returns (path, image id)."""
    config = config or config_for(layers)
    entries, paths, seen = {}, [], {}
    for i, layer in enumerate(layers):
        v1 = hashlib.sha256(f"v1-{i}".encode()).hexdigest()
        entries[f"{v1}/"] = ("dir",)
        entries[f"{v1}/VERSION"] = b"1.0"
        entries[f"{v1}/json"] = canonical({"id": v1})
        if layer in seen:
            entries[f"{v1}/layer.tar"] = ("symlink", f"../{seen[layer]}/layer.tar")
        else:
            entries[f"{v1}/layer.tar"] = gzip.compress(layer) if gzip_layers else layer
            seen[layer] = v1
        paths.append(f"{v1}/layer.tar")
    image_id = sha256(config)
    entries[f"{image_id[7:]}.json"] = config
    entries["manifest.json"] = canonical([{"Config": f"{image_id[7:]}.json", "RepoTags": repo_tags, "Layers": paths}])
    return write_archive(path, entries), image_id


def oci_archive(path, blobs: list[bytes], index: dict) -> str:
    entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": canonical(index)}
    for blob in blobs:
        entries["blobs/sha256/" + sha256(blob)[7:]] = blob
    return write_archive(path, entries)


def oci_image(layers: list[tuple[bytes, bool]], config: bytes) -> tuple[list[bytes], dict]:
    """(blobs, manifest descriptor) of an OCI image whose layers are gzipped where asked."""
    blobs, descriptors = [config], []
    for layer, gzipped in layers:
        blob = gzip.compress(layer) if gzipped else layer
        blobs.append(blob)
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzipped else ""),
                            "digest": sha256(blob), "size": len(blob)})
    manifest = canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                     "digest": sha256(config), "size": len(config)},
                          "layers": descriptors})
    blobs.append(manifest)
    return blobs, {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256(manifest),
                   "size": len(manifest)}


def busybox_layer(berth) -> bytes:
    with open(berth.busybox_tar, "rb") as f:
        return f.read()


def save(berth, tmp_path, *refs, fmt=None, name="saved.tar") -> str:
    path = str(tmp_path / name)
    berth.ok("save", "-o", path, *(["--format", fmt] if fmt else []), *refs)
    return path


def tree(root: str) -> dict:
    """Everything about a directory tree that a layer must reproduce."""
    found = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory, name)
            st = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else None
            size = st.st_size if os.path.isfile(path) and not os.path.islink(path) else 0
            found[os.path.relpath(path, root)] = (st.st_mode, st.st_uid, st.st_gid, size, link, int(st.st_mtime))
    return found


def assert_refused(result, berth, before):
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.returncode == 1, (result.returncode, stderr)
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr
    assert not result.stdout
    assert store_snapshot(berth) == before


def unique() -> str:
    return f"berth-interop-{secrets.token_hex(4)}"


def in_pty(cmd, columns=150, stdin_tty=False, stdout_tty=True):
    """Run cmd with a terminal as stdout (and/or stdin); returns (returncode, terminal output, stderr)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    try:
        proc = subprocess.run(cmd, stdin=slave if stdin_tty else subprocess.DEVNULL,
                              stdout=slave if stdout_tty else subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return proc.returncode, output.decode(), proc.stderr.decode()


# -- save: the archive --------------------------------------------------------------

def test_save_writes_docker_archive_and_oci_layout(busybox, tmp_path):
    image = inspect(busybox, "busybox")
    diff_id = image["RootFS"]["Layers"][0]
    files = members(save(busybox, tmp_path, "busybox"))
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads(files["manifest.json"]) == [{
        "Config": "blobs/sha256/" + image["Id"][7:], "RepoTags": ["busybox:latest"],
        "Layers": ["blobs/sha256/" + diff_id[7:]]}]
    assert json.loads(files["repositories"]) == {"busybox": {"latest": diff_id[7:]}}
    for name, data in files.items():
        if name.startswith("blobs/sha256/"):
            assert sha256(data) == "sha256:" + name.rpartition("/")[2]
    assert sha256(files["blobs/sha256/" + diff_id[7:]]) == diff_id  # stored uncompressed
    index = json.loads(files["index.json"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    [entry] = index["manifests"]
    assert entry["annotations"]["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    manifest = json.loads(files["blobs/sha256/" + entry["digest"][7:]])
    assert manifest["config"]["digest"] == image["Id"]
    assert [layer["digest"] for layer in manifest["layers"]] == [diff_id]


def test_save_to_stdout_is_the_same_archive(busybox, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    out = subprocess.run(busybox.cmd("save", "busybox"), capture_output=True, check=True).stdout
    with open(path, "rb") as f:
        assert out == f.read()


def test_save_refuses_to_write_to_a_terminal(busybox):
    code, output, stderr = in_pty(busybox.cmd("save", "busybox"))
    assert code == 1
    assert stderr == "Error: cowardly refusing to save to a terminal. Use the -o flag or redirect\n"
    assert "\x00" not in output


def test_save_several_images_and_tags_in_one_archive(busybox, fresh, tmp_path):
    busybox.ok("tag", "busybox", "second:two")
    other = tmp_path / "other.tar"
    other.write_bytes(layer_tar({"hello.txt": b"hi\n"}))
    other_id = busybox.ok("import", str(other), "other:1").strip()
    files = members(save(busybox, tmp_path, "busybox", "second:two", "other:1"))
    manifest = json.loads(files["manifest.json"])
    assert [item["RepoTags"] for item in manifest] == [["busybox:latest", "second:two"], ["other:1"]]
    out = fresh.ok("load", "-i", str(tmp_path / "saved.tar"))
    assert out == "Loaded image: busybox:latest\nLoaded image: second:two\nLoaded image: other:1\n"
    assert inspect(fresh, "second:two")["Id"] == inspect(busybox, "busybox")["Id"]
    assert inspect(fresh, "other:1")["Id"] == other_id


def test_save_of_a_repository_saves_all_its_tags(busybox, tmp_path):
    busybox.ok("tag", "busybox", "busybox:other")
    files = members(save(busybox, tmp_path, "busybox"))
    assert sorted(json.loads(files["manifest.json"])[0]["RepoTags"]) == ["busybox:latest", "busybox:other"]


def test_save_by_id_has_no_repo_tags_and_loads_untagged(busybox, fresh, tmp_path):
    image_id = inspect(busybox, "busybox")["Id"]
    files = members(save(busybox, tmp_path, image_id[7:19]))
    assert json.loads(files["manifest.json"])[0]["RepoTags"] is None
    assert "repositories" not in files
    assert "annotations" not in json.loads(files["index.json"])["manifests"][0]
    assert fresh.ok("load", "-i", str(tmp_path / "saved.tar")) == f"Loaded image ID: {image_id}\n"
    assert fresh.ok("images", "-a", "--format", "{{.Repository}}:{{.Tag}}") == "<none>:<none>\n"


def test_save_of_a_missing_image(busybox, tmp_path):
    path = tmp_path / "missing.tar"
    result = busybox("save", "-o", str(path), "busybox", "nosuch:1")
    assert result.returncode == 1
    assert result.stderr == "Error: No such image: nosuch:1\n"
    assert not path.exists() and listing(str(tmp_path)) == []
    result = busybox("save", "nosuch")
    assert result.returncode == 1 and result.stdout == "" and "No such image: nosuch" in result.stderr


def test_save_oci_archive_is_a_plain_oci_layout(busybox, tmp_path):
    files = members(save(busybox, tmp_path, "busybox", fmt="oci-archive"))
    assert sorted(name for name in files if not name.startswith("blobs/")) == ["index.json", "oci-layout"]
    [entry] = json.loads(files["index.json"])["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "docker.io/library/busybox:latest"
    assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_save_into_a_missing_directory(busybox, tmp_path):
    result = busybox("save", "-o", str(tmp_path / "nope" / "x.tar"), "busybox")
    assert result.returncode == 1
    assert result.stderr == (f'Error: failed to save image: invalid output path: directory "{tmp_path / "nope"}" '
                             "does not exist\n")


def test_image_save_and_image_load(busybox, fresh, tmp_path):
    path = str(tmp_path / "grouped.tar")
    busybox.ok("image", "save", "-o", path, "busybox")
    assert fresh.ok("image", "load", "-i", path) == "Loaded image: busybox:latest\n"


def test_save_with_an_unknown_format(busybox, tmp_path):
    result = busybox("save", "--format", "tarball", "-o", str(tmp_path / "x.tar"), "busybox")
    assert result.returncode == 1 and "unsupported format" in result.stderr


# -- load -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_round_trip_keeps_the_image_id_and_files(busybox, fresh, tmp_path, fmt):
    path = save(busybox, tmp_path, "busybox", fmt=fmt)
    assert fresh.ok("load", "-i", path) == "Loaded image: busybox:latest\n"
    original, loaded = inspect(busybox, "busybox"), inspect(fresh, "busybox")
    assert loaded["Id"] == original["Id"]
    assert loaded["Config"] == original["Config"] and loaded["RootFS"] == original["RootFS"]
    assert tree(loaded["GraphDriver"]["Data"]["LowerDir"]) == tree(original["GraphDriver"]["Data"]["LowerDir"])
    assert fresh.ok("run", "--rm", "busybox", "echo", "ok") == "ok\n"
    assert listing(os.path.join(fresh.root, "image", "tmp")) == []


def test_load_twice_is_idempotent(busybox, fresh, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    first = fresh.ok("load", "-i", path)
    before = store_snapshot(fresh)
    assert fresh.ok("load", "-i", path) == first
    assert store_snapshot(fresh) == before


def test_load_quiet_still_prints_what_it_loaded(busybox, fresh, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    result = fresh("load", "-q", "-i", path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "Loaded image: busybox:latest\n", "")


@pytest.mark.parametrize("compress", [None, ["gzip", "-c"], ["zstd", "-q", "-c"]], ids=["plain", "gzip", "zstd"])
def test_load_from_stdin_whole_archive_compressed(busybox, fresh, tmp_path, compress):
    data = open(save(busybox, tmp_path, "busybox"), "rb").read()
    if compress:
        data = subprocess.run(compress, input=data, capture_output=True, check=True).stdout
    result = fresh("load", input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Loaded image: busybox:latest\n"
    assert inspect(fresh, "busybox")["Id"] == inspect(busybox, "busybox")["Id"]


def test_load_moves_an_existing_tag_and_says_so(busybox, fresh, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    other = tmp_path / "other.tar"
    other.write_bytes(layer_tar({"x": b"x"}))
    old_id = fresh.ok("import", str(other), "busybox:latest").strip()
    out = fresh.ok("load", "-i", path)
    assert out == (f"The image busybox:latest already exists, renaming the old one with ID {old_id} to empty string\n"
                   "Loaded image: busybox:latest\n")
    assert fresh.ok("images", "-a", "-q", "--no-trunc").split().count(old_id) == 1  # dangling, still there


def test_load_old_docker_archive_with_gzip_layers_and_symlinks(fresh, tmp_path):
    base = busybox_layer(fresh)
    top = layer_tar({"hello.txt": b"hello from a gzip layer\n"})
    path, image_id = old_docker_archive(tmp_path / "old.tar", [base, top, top], ["old:1"], gzip_layers=True)
    assert fresh.ok("load", "-i", path) == "Loaded image: old:1\n"
    assert inspect(fresh, "old:1")["Id"] == image_id
    assert fresh.ok("run", "--rm", "old:1", "cat", "/hello.txt") == "hello from a gzip layer\n"


def test_load_oci_archive_with_gzip_layers_from_a_multi_platform_index(fresh, tmp_path):
    base = busybox_layer(fresh)
    top = layer_tar({"hello.txt": b"hello oci\n"})
    config = config_for([base, top])
    blobs, descriptor = oci_image([(base, False), (top, True)], config)
    elsewhere = "s390x" if ARCH != "s390x" else "riscv64"
    nested = canonical({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": descriptor["mediaType"], "digest": "sha256:" + "0" * 64, "size": 1,
         "platform": {"architecture": elsewhere, "os": "linux"}},  # not in the archive: never read
        dict(descriptor, platform={"architecture": ARCH, "os": "linux"})]})
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(nested), "size": len(nested),
         "annotations": {"io.containerd.image.name": "example.com/multi:2", "org.opencontainers.image.ref.name": "2"}}]}
    path = oci_archive(tmp_path / "oci.tar", blobs + [nested], index)
    assert fresh.ok("load", "-i", path) == "Loaded image: example.com/multi:2\n"
    assert inspect(fresh, "example.com/multi:2")["Id"] == sha256(config)
    assert fresh.ok("run", "--rm", "example.com/multi:2", "cat", "/hello.txt") == "hello oci\n"


def test_load_oci_archive_with_only_a_tag_as_ref_name_is_untagged(fresh, tmp_path):
    layer = layer_tar({"a": b"a"})
    config = config_for([layer])
    blobs, descriptor = oci_image([(layer, False)], config)
    index = {"schemaVersion": 2, "manifests": [
        dict(descriptor, annotations={"org.opencontainers.image.ref.name": "latest"})]}
    path = oci_archive(tmp_path / "oci.tar", blobs, index)
    assert fresh.ok("load", "-i", path) == f"Loaded image ID: {sha256(config)}\n"


def test_load_from_a_terminal_stdin_is_refused(fresh):
    code, output, stderr = in_pty(fresh.cmd("load"), stdin_tty=True, stdout_tty=False)
    assert code == 1
    assert stderr == "Error: requested load from stdin, but stdin is empty\n"


def test_load_of_a_missing_file(fresh, tmp_path):
    result = fresh("load", "-i", str(tmp_path / "nope.tar"))
    assert result.returncode == 1
    assert result.stderr == f"Error: open {tmp_path / 'nope.tar'}: no such file or directory\n"


# -- load: bad archives are refused and add nothing -----------------------------------

def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0xFF]) + data[offset + 1:]


def _layer_offset(path) -> int:
    with tarfile.open(path) as tar:
        sizes = {m.name: (m.offset_data, m.size) for m in tar}
    return max(sizes.values(), key=lambda v: v[1])[0]  # the biggest member is the layer


def _tampered_layer_blob(berth, tmp_path):
    path = save(berth, tmp_path, "busybox")
    data = open(path, "rb").read()
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(_flip(data, _layer_offset(path) + 100_000))
    return str(tampered)


def _tampered_old_layer(berth, tmp_path):
    path, _ = old_docker_archive(tmp_path / "old.tar", [busybox_layer(berth)], ["bad:1"])
    data = open(path, "rb").read()
    (tmp_path / "tampered.tar").write_bytes(_flip(data, _layer_offset(path) + 100_000))
    return str(tmp_path / "tampered.tar")


def _tampered_config(berth, tmp_path):
    layer = layer_tar({"a": b"a"})
    config = config_for([layer])
    blobs, descriptor = oci_image([(layer, False)], config)
    blobs[0] = config.replace(b'"sh"', b'"SH"')  # stored under the original config's digest
    entries = {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
               "index.json": canonical({"schemaVersion": 2, "manifests": [descriptor]})}
    for blob, original in zip(blobs, [config] + blobs[1:], strict=True):
        entries["blobs/sha256/" + sha256(original)[7:]] = blob
    return write_archive(tmp_path / "config.tar", entries)


def _wrong_diff_id(berth, tmp_path):
    layer = layer_tar({"a": b"a"})
    config = config_for([layer_tar({"b": b"b"})])
    return old_docker_archive(tmp_path / "diffid.tar", [layer], ["bad:1"], config=config)[0]


def _layer_count_mismatch(berth, tmp_path):
    layer = layer_tar({"a": b"a"})
    return old_docker_archive(tmp_path / "count.tar", [layer], ["bad:1"], config=config_for([layer, layer]))[0]


def _truncated(fraction):
    def make(berth, tmp_path):
        data = open(save(berth, tmp_path, "busybox"), "rb").read()
        path = tmp_path / "truncated.tar"
        path.write_bytes(data[:int(len(data) * fraction)])
        return str(path)
    return make


def _truncated_in_member(name):
    def make(berth, tmp_path):
        path = save(berth, tmp_path, "busybox")
        with tarfile.open(path) as tar:
            member = [m for m in tar if m.name == name][0]
        (tmp_path / "cut.tar").write_bytes(open(path, "rb").read()[:member.offset_data + member.size // 2])
        return str(tmp_path / "cut.tar")
    return make


def _truncated_at_a_member(berth, tmp_path):
    path = save(berth, tmp_path, "busybox")
    with tarfile.open(path) as tar:
        cut = [m for m in tar if m.name == "manifest.json"][0].offset
    (tmp_path / "cut.tar").write_bytes(open(path, "rb").read()[:cut])
    return str(tmp_path / "cut.tar")


def _truncated_gzip(berth, tmp_path):
    data = gzip.compress(open(save(berth, tmp_path, "busybox"), "rb").read())
    (tmp_path / "cut.tar.gz").write_bytes(data[:-8])
    return str(tmp_path / "cut.tar.gz")


def _missing_layer(berth, tmp_path):
    layer = layer_tar({"a": b"a"})
    path, _ = old_docker_archive(tmp_path / "missing.tar", [layer], ["bad:1"])
    files = {k: v for k, v in members(path).items() if not k.endswith("layer.tar")}
    return write_archive(tmp_path / "missing2.tar", files)


def _escaping_member(name):
    def make(berth, tmp_path):
        layer = layer_tar({"a": b"a"})
        path, _ = old_docker_archive(tmp_path / "base.tar", [layer], ["bad:1"])
        files = members(path)
        files[name] = b"x"
        return write_archive(tmp_path / "escape.tar", files)
    return make


def _manifest_path_escapes(berth, tmp_path):
    layer = layer_tar({"a": b"a"})
    path, _ = old_docker_archive(tmp_path / "base.tar", [layer], ["bad:1"])
    files = members(path)
    manifest = json.loads(files["manifest.json"])
    manifest[0]["Layers"] = ["../../../../etc/passwd"]
    files["manifest.json"] = canonical(manifest)
    return write_archive(tmp_path / "escape.tar", files)


def _symlink_escapes(berth, tmp_path):
    layer = layer_tar({"a": b"a"})
    path, _ = old_docker_archive(tmp_path / "base.tar", [layer], ["bad:1"])
    files = members(path)
    layer_name = [k for k in files if k.endswith("layer.tar")][0]
    files[layer_name] = ("symlink", "../../../../etc/passwd")
    return write_archive(tmp_path / "escape.tar", files)


def _layer_with_dot_dot(berth, tmp_path):
    base = busybox_layer(berth)
    evil = layer_tar({"../escaped": b"pwned"})
    return old_docker_archive(tmp_path / "evil.tar", [base, evil], ["bad:1"])[0]


def _no_manifest(berth, tmp_path):
    return write_archive(tmp_path / "nothing.tar", {"hello.txt": b"hi"})


def _not_a_tar(berth, tmp_path):
    (tmp_path / "random.bin").write_bytes(os.urandom(100_000))
    return str(tmp_path / "random.bin")


def _empty(berth, tmp_path):
    (tmp_path / "empty.tar").write_bytes(b"")
    return str(tmp_path / "empty.tar")


BAD_ARCHIVES = [
    pytest.param(_tampered_layer_blob, "digest mismatch", id="tampered-layer-blob"),
    pytest.param(_tampered_old_layer, "invalid diffID for layer 0", id="tampered-old-style-layer"),
    pytest.param(_tampered_config, "digest mismatch", id="tampered-config"),
    pytest.param(_wrong_diff_id, "invalid diffID for layer 0", id="wrong-diff-id"),
    pytest.param(_layer_count_mismatch, "layers length mismatch", id="layer-count-mismatch"),
    pytest.param(_truncated(0.5), "unexpected EOF", id="truncated-in-layer"),
    pytest.param(_truncated_in_member("index.json"), "unexpected EOF", id="truncated-in-index-json"),
    pytest.param(_truncated_in_member("repositories"), "unexpected EOF", id="truncated-in-last-member"),
    pytest.param(_truncated_at_a_member, "unexpected EOF", id="truncated-at-a-member"),
    pytest.param(_truncated_gzip, "invalid archive", id="truncated-gzip"),
    pytest.param(_missing_layer, "no such file or directory", id="missing-layer"),
    pytest.param(_escaping_member("../evil"), "escapes the archive", id="member-dot-dot"),
    pytest.param(_escaping_member("/evil"), "escapes the archive", id="member-absolute"),
    pytest.param(_manifest_path_escapes, "escapes the archive", id="manifest-path-dot-dot"),
    pytest.param(_symlink_escapes, "escapes the archive", id="symlink-escapes"),
    pytest.param(_layer_with_dot_dot, "escapes the layer", id="layer-member-dot-dot"),
    pytest.param(_no_manifest, "no manifest.json", id="no-manifest"),
    pytest.param(_not_a_tar, "invalid archive", id="not-a-tar"),
    pytest.param(_empty, "invalid archive", id="empty"),
]


@pytest.mark.parametrize("make_archive, message", BAD_ARCHIVES)
def test_bad_archive_is_refused_and_adds_nothing(busybox, tmp_path, make_archive, message):
    path = make_archive(busybox, tmp_path)
    before = store_snapshot(busybox)
    result = busybox("load", "-i", path)
    assert_refused(result, busybox, before)
    assert message in result.stderr
    with open(path, "rb") as f:
        assert_refused(busybox("load", input=f.read()), busybox, before)


def unread(fd: int) -> int:
    """Bytes written to a pipe and not yet read from it."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def test_killed_load_leaves_the_store_consistent(busybox, fresh, tmp_path):
    data = open(save(busybox, tmp_path, "busybox"), "rb").read()
    fresh.ok("import", str(tmp_path / "saved.tar"), "already:here")  # the store is not empty
    before = store_snapshot(fresh)
    tmp = os.path.join(fresh.root, "image", "tmp")
    proc = subprocess.Popen(fresh.cmd("load"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write(data[: len(data) // 2])  # mid-way through the layer
        proc.stdin.flush()
        wait_for(lambda: any(name.startswith("load-") for name in listing(tmp)), 30, "load to start staging")
        # killed once it has taken all it was given: mid-way through the layer, waiting for more
        wait_for(lambda: unread(proc.stdin.fileno()) == 0, 30, "load to read what it was given")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    after = store_snapshot(fresh)
    assert {k: v for k, v in after.items() if k != "tmp"} == {k: v for k, v in before.items() if k != "tmp"}
    assert all(name.startswith("load-") for name in after["tmp"])
    # the next load completes, and clears what the killed one left
    result = fresh("load", input=data)
    assert result.returncode == 0 and result.stdout == b"Loaded image: busybox:latest\n"
    assert listing(tmp) == []


# -- progress -----------------------------------------------------------------------

def test_load_shows_progress_on_a_terminal(busybox, fresh, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    diff_id = inspect(busybox, "busybox")["RootFS"]["Layers"][0]
    code, output, _ = in_pty(fresh.cmd("load", "-i", path), columns=150)
    assert code == 0
    lines = output.replace("\r\n", "\n").split("\n")
    assert re.search(rf"{diff_id[7:19]}: Loading layer \[={{50}}>\] +\d[\d.]*[kM]B/\d[\d.]*[kM]B", lines[0]), output
    assert lines[1] == "Loaded image: busybox:latest"


def test_load_progress_is_quiet_with_q_or_off_a_terminal(busybox, fresh, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    code, output, _ = in_pty(fresh.cmd("load", "-q", "-i", path))
    assert code == 0 and "Loading layer" not in output and "Loaded image: busybox:latest" in output
    assert fresh.ok("load", "-i", path) == "Loaded image: busybox:latest\n"


def test_narrow_terminal_progress_has_no_bar(busybox, fresh, tmp_path):
    path = save(busybox, tmp_path, "busybox")
    code, output, _ = in_pty(fresh.cmd("load", "-i", path), columns=80)
    assert code == 0 and "Loading layer " in output and "Loading layer [" not in output


# -- other tools read berth's archives, berth reads theirs ------------------------------

@pytest.fixture
def interop_name(busybox):
    """busybox under a name no other test or user has: name:1 in berth."""
    name = unique()
    busybox.ok("tag", "busybox", f"{name}:1")
    return name


def _podman_loaded(output: str) -> list[str]:
    return re.findall(r"^Loaded image(?:\(s\))?: (.+)$", output, re.M)


def test_docker_loads_and_runs_a_berth_archive(busybox, tmp_path, interop_name):
    require_peer("docker")
    path = save(busybox, tmp_path, f"{interop_name}:1")
    try:
        out = subprocess.run(["docker", "load", "-i", path], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert f"Loaded image: {interop_name}:1" in out.stdout
        run = subprocess.run(["docker", "run", "--pull", "never", "--rm", f"{interop_name}:1", "echo", "ok"],
                             capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stdout) == (0, "ok\n"), run.stderr
        got = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", f"{interop_name}:1"],
                             capture_output=True, text=True).stdout.strip()
        assert got == inspect(busybox, "busybox")["Id"]
    finally:
        subprocess.run(["docker", "rmi", "-f", f"{interop_name}:1"], capture_output=True)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_podman_loads_and_runs_a_berth_archive(busybox, tmp_path, interop_name, fmt):
    require_peer("podman")
    path = save(busybox, tmp_path, f"{interop_name}:1", fmt=fmt)
    loaded = []
    try:
        out = subprocess.run(["podman", "load", "-i", path], capture_output=True, text=True, timeout=120)
        loaded = _podman_loaded(out.stdout)
        assert out.returncode == 0, out.stderr
        assert loaded == [f"docker.io/library/{interop_name}:1"], out.stdout
        run = subprocess.run(["podman", "run", "--pull", "never", "--rm", f"{interop_name}:1", "echo", "ok"],
                             capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stdout) == (0, "ok\n"), run.stderr
    finally:
        for name in loaded or [f"docker.io/library/{interop_name}:1"]:
            subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


def test_podman_loads_a_berth_archive_of_two_images(busybox, tmp_path, interop_name):
    require_peer("podman")
    other = tmp_path / "other.tar"
    other.write_bytes(layer_tar({"hello.txt": b"hi\n"}))
    busybox.ok("import", str(other), f"{interop_name}:2")
    path = save(busybox, tmp_path, f"{interop_name}:1", f"{interop_name}:2")
    loaded = []
    try:
        out = subprocess.run(["podman", "load", "-i", path], capture_output=True, text=True, timeout=120)
        loaded = _podman_loaded(out.stdout)
        assert out.returncode == 0, out.stderr
        assert sorted(name.rpartition("/")[2] for name in loaded) == [f"{interop_name}:1", f"{interop_name}:2"]
        run = subprocess.run(["podman", "run", "--pull", "never", "--rm", f"{interop_name}:1", "echo", "ok"],
                             capture_output=True, text=True, timeout=120)
        assert (run.returncode, run.stdout) == (0, "ok\n"), run.stderr
    finally:
        for name in loaded:
            subprocess.run(["podman", "rmi", "-f", name], capture_output=True)


def _peer_archive(tool, tmp_path, fmt=None) -> tuple[str, str, str]:
    """busybox saved by docker or podman under a unique tag (removed again): (path, name, image ID)."""
    name = f"{unique()}:1"
    source = "busybox:latest"
    image_id = subprocess.run([tool, "image", "inspect", "-f", "{{.Id}}", source], capture_output=True,
                              text=True, check=True).stdout.strip()
    subprocess.run([tool, "tag", source, name], check=True, capture_output=True)
    path = str(tmp_path / f"{tool}.tar")
    try:
        subprocess.run([tool, "save", *(["--format", fmt] if fmt else []), "-o", path, name], check=True,
                       capture_output=True, timeout=120)
    finally:
        subprocess.run([tool, "rmi", name], capture_output=True)  # untags only: busybox keeps the image
    return path, name, ("sha256:" + image_id if not image_id.startswith("sha256:") else image_id)


def test_berth_loads_and_runs_a_docker_save(fresh, tmp_path):
    require_peer("docker")
    path, name, image_id = _peer_archive("docker", tmp_path)
    assert fresh.ok("load", "-i", path) == f"Loaded image: {name}\n"
    assert inspect(fresh, name)["Id"] == image_id
    assert fresh.ok("run", "--rm", name, "echo", "ok") == "ok\n"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_berth_loads_and_runs_a_podman_save(fresh, tmp_path, fmt):
    require_peer("podman")
    path, name, image_id = _peer_archive("podman", tmp_path, fmt)
    out = fresh.ok("load", "-i", path)
    loaded = re.findall(r"^Loaded image: (.+)$", out, re.M)
    assert [n.rpartition("/")[2] for n in loaded] == [name], out
    assert inspect(fresh, loaded[0])["Id"] == image_id
    assert fresh.ok("run", "--rm", loaded[0], "echo", "ok") == "ok\n"


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_skopeo_inspects_a_berth_archive(busybox, tmp_path, fmt):
    require_peer("skopeo")
    path = save(busybox, tmp_path, "busybox", fmt=fmt)
    out = subprocess.run(["skopeo", "inspect", f"{fmt}:{path}"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    image = inspect(busybox, "busybox")
    assert found["Layers"] == image["RootFS"]["Layers"]
    assert (found["Os"], found["Architecture"]) == ("linux", ARCH)
    config = subprocess.run(["skopeo", "inspect", "--config", "--raw", f"{fmt}:{path}"], capture_output=True,
                            timeout=60)
    assert sha256(config.stdout) == image["Id"]


def test_umoci_reads_a_berth_oci_archive(busybox, tmp_path):
    require_peer("umoci")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(save(busybox, tmp_path, "busybox", fmt="oci-archive")) as tar:
        tar.extractall(layout)
    out = subprocess.run(["umoci", "ls", "--layout", str(layout)], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout) == (0, "docker.io/library/busybox:latest\n"), out.stderr
    bundle = tmp_path / "bundle"
    unpacked = subprocess.run(["umoci", "unpack", "--image", f"{layout}:docker.io/library/busybox:latest",
                               str(bundle)], capture_output=True, text=True, timeout=120)
    assert unpacked.returncode == 0, unpacked.stderr
    assert os.path.isfile(bundle / "rootfs" / "bin" / "busybox")


def test_commit_save_load_round_trip_keeps_files_owners_modes_xattrs(busybox, fresh, tmp_path):
    busybox.ok("run", "--name", "maker", "busybox", "sh", "-c",
               "mkdir /d && echo hi > /d/f && chown 1234:5678 /d/f && chmod 4750 /d/f && ln -s f /d/link")
    upper = busybox.ok("inspect", "--format", "{{.GraphDriver.Data.UpperDir}}", "maker").strip()
    os.setxattr(os.path.join(upper, "d", "f"), "user.origin", b"berth")  # busybox has no setfattr
    image_id = busybox.ok("commit", "maker", "roundtrip:1").strip()
    archive = tmp_path / "rt.tar"
    busybox.ok("save", "-o", str(archive), "roundtrip:1")
    assert "Loaded image: roundtrip:1" in fresh.ok("load", "-i", str(archive))
    assert fresh.ok("image", "inspect", "--format", "{{.Id}}", "roundtrip:1").strip() == image_id
    out = fresh.ok("run", "--rm", "roundtrip:1", "sh", "-c", "stat -c '%u:%g %a' /d/f; cat /d/f; readlink /d/link")
    assert out.split() == ["1234:5678", "4750", "hi", "f"]
    fresh.ok("create", "--name", "probe", "roundtrip:1")
    lower = fresh.ok("inspect", "--format", "{{.GraphDriver.Data.LowerDir}}", "probe").strip().split(":")
    layer_with_file = next(d for d in lower if os.path.exists(os.path.join(d, "d", "f")))
    assert os.getxattr(os.path.join(layer_with_file, "d", "f"), "user.origin") == b"berth"
