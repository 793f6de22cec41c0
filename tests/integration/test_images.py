"""Images from the command line, as docker shows them: import (plain, gzip, zstd, stdin,
--change, --message), images, tag, rmi, image inspect; bad tarballs leave nothing behind."""

import io
import json
import os
import re
import stat
import subprocess
import tarfile

import pytest

from conftest import refused, require_peer

HEX64 = re.compile(r"^sha256:[0-9a-f]{64}$")
SHORT_ID = re.compile(r"^[0-9a-f]{12}$")


# -- helpers ----------------------------------------------------------------------

def inspect(berth, ref: str) -> dict:
    found = json.loads(berth.ok("image", "inspect", ref))
    assert len(found) == 1
    return found[0]


def image_ids(berth) -> list[str]:
    return berth.ok("images", "-q", "--no-trunc").split()


def listing(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


def store_snapshot(berth) -> dict:
    image = os.path.join(berth.root, "image")
    return {"images": sorted(image_ids(berth)), "layers": listing(os.path.join(image, "layers")),
            "tmp": listing(os.path.join(image, "tmp"))}


def layer_dir(berth, ref: str) -> str:
    lower = inspect(berth, ref)["GraphDriver"]["Data"]["LowerDir"].split(":")
    assert len(lower) == 1
    return lower[0]


def table(output: str) -> list[list[str]]:
    """Split a docker table into cells: columns are separated by 2+ spaces."""
    return [re.split(r"\s{2,}", line.strip()) for line in output.splitlines()]


def write_tar(path, *entries) -> str:
    """entries: (name, kind, payload) where kind is "file" (payload = bytes),
    "dir", or "symlink"/"hardlink" (payload = link target)."""
    with tarfile.open(path, "w") as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            info.mode = 0o755
            if kind != "dir":
                info.linkname = payload
            tar.addfile(info)
    return str(path)


# -- import ---------------------------------------------------------------------

def test_import_prints_the_image_id(berth):
    out = berth.ok("import", berth.busybox_tar, "imported")
    assert HEX64.match(out.strip()), out
    assert inspect(berth, "imported")["Id"] == out.strip()


def test_import_from_stdin(berth):
    with open(berth.busybox_tar, "rb") as f:
        out = berth.ok("import", "-", "fromstdin:1", input=f.read()).decode()
    assert HEX64.match(out.strip())
    assert berth.ok("run", "--rm", "fromstdin:1", "echo", "ok") == "ok\n"


@pytest.mark.parametrize("compress", [None, ["gzip", "-c"], ["zstd", "-q", "-c"], ["bzip2", "-c"], ["xz", "-c"]],
                         ids=["plain", "gzip", "zstd", "bzip2", "xz"])
def test_import_compressed_tar_runs(berth, tmp_path, compress):
    source = berth.busybox_tar
    if compress:
        require_peer(compress[0])
        source = str(tmp_path / "busybox.tar.compressed")
        with open(berth.busybox_tar, "rb") as src, open(source, "wb") as out:
            subprocess.run(compress, stdin=src, stdout=out, check=True)
    assert HEX64.match(berth.ok("import", source, "packed").strip())
    assert berth.ok("run", "--rm", "packed", "echo", "ok") == "ok\n"


def test_import_without_a_name_is_dangling(berth):
    image_id = berth.ok("import", berth.busybox_tar).strip()
    assert inspect(berth, image_id)["RepoTags"] == []
    assert berth.ok("images", "-q", "--no-trunc", "--filter", "dangling=true").split() == [image_id]


def test_import_changes_show_in_config(berth):
    berth.ok("import", "-c", 'CMD ["echo","hi"]', "-c", "ENV A=1", "-c", "WORKDIR /tmp",
             "-c", 'ENTRYPOINT ["/bin/sh","-c"]', berth.busybox_tar, "changed")
    config = inspect(berth, "changed")["Config"]
    assert config["Cmd"] == ["echo", "hi"]
    assert config["Env"] == ["A=1"]
    assert config["WorkingDir"] == "/tmp"
    assert config["Entrypoint"] == ["/bin/sh", "-c"]


def test_import_without_changes_has_empty_config(berth):
    berth.ok("import", berth.busybox_tar, "bare")
    config = inspect(berth, "bare")["Config"]
    assert config["Cmd"] is None
    assert config["Entrypoint"] is None
    assert config["Env"] is None


def test_import_message_is_the_comment(berth):
    berth.ok("import", "-m", "my message", berth.busybox_tar, "withmsg")
    assert inspect(berth, "withmsg")["Comment"] == "my message"


def test_import_from_stdin_comment(berth):
    with open(berth.busybox_tar, "rb") as f:
        berth.ok("import", "-", "nomsg", input=f.read())
    assert inspect(berth, "nomsg")["Comment"] == "Imported from -"


def test_import_from_file_comment_matches_docker(berth):
    berth.ok("import", berth.busybox_tar, "fromfile")
    assert inspect(berth, "fromfile")["Comment"] == "Imported from -"


def test_run_honours_imported_env_and_workdir(berth):
    berth.import_busybox(berth.busybox_tar, "envwd", "ENV A=1", "WORKDIR /tmp", 'CMD ["sh"]')
    assert berth.ok("run", "--rm", "envwd", "pwd") == "/tmp\n"
    env = berth.ok("run", "--rm", "envwd", "env").splitlines()
    assert "A=1" in env
    assert any(line.startswith("PATH=") for line in env)


def test_run_honours_imported_entrypoint_and_cmd(berth):
    berth.import_busybox(berth.busybox_tar, "epcmd", 'ENTRYPOINT ["/bin/sh","-c"]', 'CMD ["echo from-cmd"]')
    assert berth.ok("run", "--rm", "epcmd") == "from-cmd\n"
    assert berth.ok("run", "--rm", "epcmd", "echo override") == "override\n"


# `docker import` exits 1 on every error (125 is run's and create's alone)

def test_import_with_a_bad_change_is_refused(berth):
    berth.fails(1, "import", "-c", "FROB x", berth.busybox_tar, "badchange", says="is not a valid change command")
    assert image_ids(berth) == []


def test_import_of_a_missing_file(berth, tmp_path):
    berth.fails(1, "import", str(tmp_path / "nope.tar"), "missing",
                says=f"open {tmp_path / 'nope.tar'}: no such file or directory")


# -- bad tarballs leave nothing behind ---------------------------------------------

def _truncated(size):
    def make(berth, tmp_path, outside):
        path = tmp_path / "truncated.tar"
        path.write_bytes(open(berth.busybox_tar, "rb").read()[:size])
        return str(path)
    return make


def _random_bytes(berth, tmp_path, outside):
    path = tmp_path / "random.bin"
    path.write_bytes(os.urandom(100_000))
    return str(path)


def _empty(berth, tmp_path, outside):
    path = tmp_path / "empty.tar"
    path.write_bytes(b"")
    return str(path)


def _absolute(berth, tmp_path, outside):
    return write_tar(tmp_path / "abs.tar", ("/etc/x", "file", b"x"))


def _dot_dot(berth, tmp_path, outside):
    return write_tar(tmp_path / "dotdot.tar", ("../escape", "file", b"x"))


def _through_symlink(berth, tmp_path, outside):
    return write_tar(tmp_path / "symlink.tar", ("evil", "symlink", str(outside)), ("evil/file", "file", b"pwned"))


def _hardlink_outside(berth, tmp_path, outside):
    return write_tar(tmp_path / "hardlink.tar", ("passwd", "hardlink", "/etc/passwd"))


def _truncated_gzip(berth, tmp_path, outside):
    whole = subprocess.run(["gzip", "-c", berth.busybox_tar], capture_output=True, check=True).stdout
    path = tmp_path / "truncated.tar.gz"
    path.write_bytes(whole[:-8])  # without the CRC and size trailer
    return str(path)


def _truncated_zstd(berth, tmp_path, outside):
    whole = subprocess.run(["zstd", "-q", "-c", berth.busybox_tar], capture_output=True, check=True).stdout
    path = tmp_path / "truncated.tar.zst"
    path.write_bytes(whole[:-10])  # `zstd -t` says: premature end
    return str(path)



BAD_TARBALLS = [
    pytest.param(_truncated(500_000), id="truncated-in-data"),
    pytest.param(_truncated(5000), id="truncated-in-header"),
    pytest.param(_truncated_gzip, id="truncated-gzip"),
    pytest.param(_truncated_zstd, id="truncated-zstd"),
    pytest.param(_random_bytes, id="random-bytes"),
    pytest.param(_empty, id="empty-file"),
    pytest.param(_absolute, id="absolute-path"),
    pytest.param(_dot_dot, id="dot-dot"),
    pytest.param(_through_symlink, id="write-through-symlink"),
    pytest.param(_hardlink_outside, id="hardlink-outside"),
]


@pytest.fixture
def outside(tmp_path):
    path = tmp_path / "outside"
    path.mkdir()
    return path


@pytest.mark.parametrize("make_tarball", BAD_TARBALLS)
def test_bad_tarball_is_refused_and_adds_nothing(busybox, tmp_path, outside, make_tarball):
    tarball = make_tarball(busybox, tmp_path, outside)
    before = store_snapshot(busybox)
    result = busybox("import", tarball, "bad:1")
    refused(result, 1)
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert store_snapshot(busybox) == before
    assert listing(str(outside)) == []


@pytest.mark.parametrize("make_tarball", [
    pytest.param(_truncated_gzip, id="truncated-gzip"),  # fails while decompressing, before the store
    pytest.param(_truncated(500_000), id="truncated-in-data"),
    pytest.param(_random_bytes, id="random-bytes"),
    pytest.param(_dot_dot, id="dot-dot"),
    pytest.param(_through_symlink, id="write-through-symlink"),
])
def test_bad_tarball_adds_no_blob(busybox, tmp_path, outside, make_tarball):
    blobs = os.path.join(busybox.root, "image", "blobs", "sha256")
    before = listing(blobs)
    refused(busybox("import", make_tarball(busybox, tmp_path, outside), "bad:1"), 1)
    assert listing(blobs) == before


def test_bad_tarball_from_stdin_adds_nothing(busybox, tmp_path, outside):
    before = store_snapshot(busybox)
    with open(_dot_dot(busybox, tmp_path, outside), "rb") as f:
        result = busybox("import", "-", "bad:1", input=f.read())
    refused(result, 1)
    assert result.stderr.decode().startswith("Error: ")
    assert store_snapshot(busybox) == before


# -- whiteouts ------------------------------------------------------------------------

def test_whiteouts_become_overlay_whiteouts_in_the_layer(berth, tmp_path):
    tarball = write_tar(tmp_path / "wh.tar", ("dir", "dir", None), (".wh.foo", "file", b""),
                        ("dir/.wh..wh..opq", "file", b""), ("dir/keep", "file", b"k"))
    berth.ok("import", tarball, "whiteouts")
    layer = layer_dir(berth, "whiteouts")
    foo = os.lstat(os.path.join(layer, "foo"))
    assert stat.S_ISCHR(foo.st_mode) and foo.st_rdev == os.makedev(0, 0)
    assert os.getxattr(os.path.join(layer, "dir"), "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(layer)) == ["dir", "foo"]
    assert os.listdir(os.path.join(layer, "dir")) == ["keep"]


# -- images -------------------------------------------------------------------------

def test_images_quiet_prints_the_short_id(busybox):
    image_id = inspect(busybox, "busybox")["Id"]
    assert busybox.ok("images", "-q") == image_id[7:19] + "\n"


def test_images_quiet_no_trunc_prints_the_full_id(busybox):
    image_id = inspect(busybox, "busybox")["Id"]
    assert busybox.ok("images", "-q", "--no-trunc") == image_id + "\n"


def test_images_filters_by_repository(busybox):
    busybox.ok("import", busybox.busybox_tar, "other:1")
    busybox_id = inspect(busybox, "busybox")["Id"]
    assert busybox.ok("images", "-q", "--no-trunc", "busybox").split() == [busybox_id]
    assert busybox.ok("images", "-q", "--no-trunc", "busybox:latest").split() == [busybox_id]
    assert busybox.ok("images", "-q", "busybox:nosuchtag") == ""


def test_images_filter_dangling(busybox):
    dangling = busybox.ok("import", busybox.busybox_tar).strip()
    tagged = inspect(busybox, "busybox")["Id"]
    assert busybox.ok("images", "-q", "--no-trunc", "--filter", "dangling=true").split() == [dangling]
    assert busybox.ok("images", "-q", "--no-trunc", "--filter", "dangling=false").split() == [tagged]


def test_images_table(busybox):
    lines = busybox.ok("images").splitlines()
    header, rows = lines[0], table("\n".join(lines[1:]))
    assert table(header) == [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    assert len(rows) == 1
    repo, tag, image_id, created, size = rows[0]
    assert (repo, tag) == ("busybox", "latest")
    assert SHORT_ID.match(image_id)
    assert created.endswith(" ago")
    assert re.match(r"^\d+(\.\d+)?[kMG]?B$", size)
    # tabwriter alignment: every cell starts where its header does
    for title, cell in zip(("TAG", "IMAGE ID", "CREATED", "SIZE"), (tag, image_id, created, size), strict=True):
        assert lines[1].index(cell) == header.index(title)


def test_images_no_trunc_table_shows_full_id(busybox):
    rows = table(busybox.ok("images", "--no-trunc"))[1:]
    assert HEX64.match(rows[0][2])


def test_images_format(busybox):
    assert busybox.ok("images", "--format", "{{.Repository}}:{{.Tag}}") == "busybox:latest\n"


def test_images_lists_a_dangling_image_as_none(busybox):
    busybox.ok("import", busybox.busybox_tar)
    out = busybox.ok("images", "--filter", "dangling=true", "--format", "{{.Repository}} {{.Tag}}")
    assert out == "<none> <none>\n"


# -- tag ---------------------------------------------------------------------------

def test_tag_adds_a_name_for_the_same_image(busybox):
    busybox.ok("tag", "busybox", "mybox:1")
    assert busybox.ok("images", "-q").split() == [inspect(busybox, "busybox")["Id"][7:19]]
    assert sorted(inspect(busybox, "mybox:1")["RepoTags"]) == ["busybox:latest", "mybox:1"]
    assert inspect(busybox, "mybox:1")["Id"] == inspect(busybox, "busybox")["Id"]


def test_tag_shows_both_names_in_images(busybox):
    busybox.ok("tag", "busybox", "mybox:1")
    rows = table(busybox.ok("images"))[1:]
    assert sorted((r[0], r[1]) for r in rows) == [("busybox", "latest"), ("mybox", "1")]
    assert rows[0][2] == rows[1][2]


def test_tag_by_image_id(busybox):
    image_id = inspect(busybox, "busybox")["Id"]
    busybox.ok("tag", image_id[7:19], "byid")
    assert inspect(busybox, "byid:latest")["Id"] == image_id


def test_tag_moves_an_existing_name(busybox):
    other = busybox.ok("import", busybox.busybox_tar, "other").strip()
    busybox.ok("tag", "other", "busybox")
    assert inspect(busybox, "busybox")["Id"] == other


def test_tag_of_a_missing_image(busybox):
    busybox.fails(1, "tag", "nosuch", "x", says="No such image: nosuch")


def test_tag_with_an_invalid_name(busybox):
    # docker: `Error parsing reference: "UPPER" is not a valid repository/tag: invalid reference
    # format: repository name (library/UPPER) must be lowercase`, exit 1 (the CLI's own check)
    busybox.fails(1, "tag", "busybox", "UPPER", says=("invalid reference format", "must be lowercase"))
    assert busybox.ok("images", "-q", "--no-trunc").split() == [inspect(busybox, "busybox")["Id"]]


# -- rmi ---------------------------------------------------------------------------

def test_rmi_of_one_of_two_names_only_untags(busybox):
    busybox.ok("tag", "busybox", "mybox:1")
    assert busybox.ok("rmi", "mybox:1") == "Untagged: mybox:1\n"
    assert inspect(busybox, "busybox")["RepoTags"] == ["busybox:latest"]
    busybox.fails(1, "image", "inspect", "mybox:1", says="No such image: mybox:1")


def test_rmi_of_the_last_name_deletes_image_blobs_and_layer(busybox):
    image = inspect(busybox, "busybox")
    lines = busybox.ok("rmi", "busybox").splitlines()
    assert lines[0] == "Untagged: busybox:latest"
    assert lines[1] == f"Deleted: {image['Id']}"
    assert f"Deleted: {image['RootFS']['Layers'][0]}" in lines[2:]
    assert image_ids(busybox) == []
    assert listing(os.path.join(busybox.root, "image", "blobs", "sha256")) == []
    assert listing(os.path.join(busybox.root, "image", "layers")) == []


def test_rmi_keeps_a_layer_another_image_uses(busybox):
    busybox.ok("import", busybox.busybox_tar, "other")
    layer = layer_dir(busybox, "other")
    busybox.ok("rmi", "busybox")
    assert os.path.isdir(layer)
    assert busybox.ok("run", "--rm", "other", "echo", "ok") == "ok\n"


def test_rmi_of_an_image_used_by_a_container_is_refused(busybox):
    container_id = busybox.ok("create", "busybox", "true").strip()
    busybox.fails(1, "rmi", "busybox", says=('conflict: unable to remove repository reference "busybox" (must force)',
                                             f"container {container_id[:12]} is using its referenced image"))
    assert inspect(busybox, "busybox")["RepoTags"] == ["busybox:latest"]


def test_rmi_force_untags_an_image_used_by_a_container(busybox):
    busybox.ok("create", "busybox", "true")
    result = busybox("rmi", "-f", "busybox")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "Untagged: busybox:latest"
    busybox.fails(1, "image", "inspect", "busybox", says="No such image: busybox")


def test_rmi_of_a_missing_image(busybox):
    busybox.fails(1, "rmi", "nosuch", says="No such image: nosuch")
    assert image_ids(busybox) == [inspect(busybox, "busybox")["Id"]]


# -- inspect -----------------------------------------------------------------------------

def test_image_inspect_shape(busybox):
    found = json.loads(busybox.ok("image", "inspect", "busybox"))
    assert isinstance(found, list) and len(found) == 1
    image = found[0]
    assert HEX64.match(image["Id"])
    assert image["RepoTags"] == ["busybox:latest"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", image["Created"])
    assert image["Config"]["Cmd"] == ["sh"]
    assert image["Architecture"] in ("amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64")
    assert image["Os"] == "linux"
    assert image["Size"] > 0
    assert image["RootFS"]["Type"] == "layers"
    assert len(image["RootFS"]["Layers"]) == 1
    assert HEX64.match(image["RootFS"]["Layers"][0])


def test_image_id_is_the_config_digest(busybox):
    image = inspect(busybox, "busybox")
    blob = os.path.join(busybox.root, "image", "blobs", "sha256", image["Id"][7:])
    assert json.load(open(blob))["rootfs"]["diff_ids"] == image["RootFS"]["Layers"]


def test_layer_diff_id_is_the_digest_of_the_uncompressed_tar(berth, tmp_path):
    import hashlib

    compressed = str(tmp_path / "busybox.tar.gz")
    with open(berth.busybox_tar, "rb") as src, open(compressed, "wb") as out:
        subprocess.run(["gzip", "-c"], stdin=src, stdout=out, check=True)
    berth.ok("import", compressed, "gz")
    with open(berth.busybox_tar, "rb") as f:
        expected = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    assert inspect(berth, "gz")["RootFS"]["Layers"] == [expected]


def test_inspect_without_type_finds_the_image(busybox):
    found = json.loads(busybox.ok("inspect", "busybox"))
    assert found[0]["Id"] == inspect(busybox, "busybox")["Id"]
    assert found[0]["RepoTags"] == ["busybox:latest"]


def test_inspect_by_short_id(busybox):
    image_id = inspect(busybox, "busybox")["Id"]
    assert inspect(busybox, image_id[7:19])["Id"] == image_id


def test_image_inspect_format(busybox):
    image_id = inspect(busybox, "busybox")["Id"]
    assert busybox.ok("image", "inspect", "--format", "{{.Id}}", "busybox") == image_id + "\n"
    assert busybox.ok("inspect", "-f", "{{.Os}}", "busybox") == "linux\n"


def test_inspect_of_a_missing_object(busybox):
    result = busybox("inspect", "nosuch")
    refused(result, 1, "No such object: nosuch")
    assert json.loads(result.stdout) == []


def test_image_inspect_of_a_missing_image(busybox):
    result = busybox("image", "inspect", "nosuch")
    refused(result, 1, "No such image: nosuch")
    assert json.loads(result.stdout) == []  # docker prints the empty list too


# -- layer sharing -------------------------------------------------------------------

def test_same_tar_under_two_names_shares_one_layer(berth):
    berth.ok("import", berth.busybox_tar, "one")
    berth.ok("import", berth.busybox_tar, "two")
    layers = [n for n in listing(os.path.join(berth.root, "image", "layers")) if not n.endswith(".json")]
    assert len(layers) == 1
    assert layer_dir(berth, "one") == layer_dir(berth, "two")
    assert inspect(berth, "one")["RootFS"] == inspect(berth, "two")["RootFS"]
