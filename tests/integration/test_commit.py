"""Images from containers (book chapter 7): diff, commit, history, export."""

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile

import pytest

from berth.image import diff as layer_diff
from conftest import require_peer, wait_for


def diff(berth, name: str) -> list[str]:
    return berth.ok("diff", name).splitlines()


def test_diff_book_examples(busybox):
    busybox.ok("run", "--name", "hello", "busybox", "touch", "/HelloWorld")
    assert diff(busybox, "hello") == ["A /HelloWorld"]
    busybox.ok("run", "--name", "novi", "busybox", "rm", "/bin/vi")
    assert diff(busybox, "novi") == ["C /bin", "D /bin/vi"]
    busybox.ok("run", "--name", "touchvi", "busybox", "touch", "/bin/vi")
    # /bin/vi is a symlink to busybox in this image: touch follows it (docker prints the same)
    assert diff(busybox, "touchvi") == ["C /bin", "C /bin/busybox"]
    # docker lists a directory's changes right after it, in the directory's own order
    busybox.ok("run", "--name", "tree", "busybox", "sh", "-c", "mkdir -p /d/e; touch /d/e/f /d/g")
    changes = diff(busybox, "tree")
    assert changes[0] == "A /d" and set(changes) == {"A /d", "A /d/e", "A /d/e/f", "A /d/g"}
    assert changes.index("A /d/e/f") == changes.index("A /d/e") + 1


def test_diff_matches_docker_on_the_same_image(busybox):
    require_peer("docker")
    probe = subprocess.run(["docker", "image", "inspect", "busybox:latest"], capture_output=True, text=True)
    assert probe.returncode == 0, f"docker has no busybox:latest (scripts/test-peers imports it): {probe.stderr}"
    script = "touch /bin/vi; rm /bin/ls; mkdir -p /new/dir; echo x > /new/dir/f; touch /HelloWorld"
    busybox.ok("run", "--name", "same", "busybox", "sh", "-c", script)
    name = f"berth-diff-{os.getpid()}"
    subprocess.run(["docker", "run", "--pull", "never", "--name", name, "busybox", "sh", "-c", script], check=True,
                   capture_output=True)
    try:
        theirs = subprocess.run(["docker", "diff", name], check=True, capture_output=True, text=True).stdout
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    # docker walks the upper dir in readdir order, which differs from one directory to the
    # next even for the same names: the same changes, in some depth-first order
    assert sorted(diff(busybox, "same")) == sorted(theirs.splitlines())


def test_diff_of_a_running_container(busybox):
    busybox.ok("run", "-d", "--name", "live", "busybox", "sh", "-c", "touch /live-file; sleep 60")
    try:
        wait_for(lambda: "A /live-file" in diff(busybox, "live"), what="/live-file in the running container's diff")
    finally:
        busybox("rm", "-f", "live")


def test_commit_carries_the_command_forward(busybox):
    script = "printf '#!/bin/sh\\necho hello from the new image\\n' > /bin/hello; chmod 755 /bin/hello"
    busybox.ok("run", "--name", "image-dev", "busybox", "sh", "-c", script)
    image_id = busybox.ok("commit", "image-dev", "hello-img").strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    assert busybox.ok("run", "--rm", "hello-img", "hello") == "hello from the new image\n"
    # the committed image's CMD is the container's command
    config = json.loads(busybox.ok("image", "inspect", "--format", "{{json .Config}}", "hello-img"))
    assert config["Cmd"] == ["sh", "-c", script]


def test_commit_makes_the_entrypoint_stick(busybox):
    busybox.ok("create", "--name", "ep", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    busybox.ok("commit", "ep", "ep-img")
    assert busybox.ok("run", "--rm", "ep-img").strip() == "from entrypoint"
    assert busybox.ok("run", "--rm", "ep-img", "other", "args").strip() == "other args"


def test_commit_carries_config_and_applies_changes(busybox):
    busybox.ok("create", "--name", "cfg", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "-l", "k=v", "busybox",
               "sh", "-c", "echo $A $B; pwd; id -u")
    busybox.ok("commit", "-a", "Ada <ada@example.com>", "-m", "a message",
               "-c", "ENV B=2", "-c", "EXPOSE 8080", "-c", "LABEL extra=yes", "-c", "VOLUME /data", "cfg", "cfg-img")
    config = json.loads(busybox.ok("image", "inspect", "--format", "{{json .Config}}", "cfg-img"))
    assert "A=1" in config["Env"] and "B=2" in config["Env"]
    assert config["WorkingDir"] == "/tmp" and config["User"] == "nobody"
    assert config["Labels"] == {"k": "v", "extra": "yes"}
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert config["Volumes"] == {"/data": {}}
    assert busybox.ok("run", "--rm", "cfg-img").split() == ["1", "2", "/tmp", "65534"]
    inspect = json.loads(busybox.ok("image", "inspect", "cfg-img"))[0]
    assert inspect["Author"] == "Ada <ada@example.com>"
    history = busybox.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Comment}}", "cfg-img").splitlines()
    assert history[0] == "sh -c echo $A $B; pwd; id -u|a message"
    assert history[-1] == "|Imported from -"


def test_commit_preserves_files_exactly(busybox):
    script = ("mkdir -p /data/sub && echo content > /data/file && chown 1234:5678 /data/file && chmod 4751 /data/file"
              " && ln /data/file /data/hard && ln -s ../file /data/sub/link && mknod /data/null c 1 3"
              " && mkfifo /data/fifo && setfattr -n user.k -v val /data/file 2>/dev/null;"
              " rm /bin/vi; rm -rf /home; mkdir /home; echo fresh > /home/only")
    busybox.ok("run", "--name", "files", "busybox", "sh", "-c", script)
    busybox.ok("commit", "files", "files-img")
    check = ("stat -c '%n %u:%g %a %F %h' /data/file /data/hard /data/null /data/fifo; readlink /data/sub/link;"
             " cat /data/sub/link; ls /bin/vi 2>&1; ls /home")
    out = busybox.ok("run", "--rm", "files-img", "sh", "-c", check).splitlines()
    assert out[0] == "/data/file 1234:5678 4751 regular file 2"
    assert out[1] == "/data/hard 1234:5678 4751 regular file 2"
    assert out[2].startswith("/data/null 0:0 644 character special file")
    assert out[3].startswith("/data/fifo 0:0 644 fifo")
    assert out[4:6] == ["../file", "content"]
    assert "No such file or directory" in out[6]
    assert out[7:] == ["only"]


def test_commit_layer_tar_uses_oci_whiteouts(busybox):
    busybox.ok("run", "--name", "wh", "busybox", "sh", "-c", "rm /bin/vi; rm -rf /home; mkdir /home")
    image_id = busybox.ok("commit", "wh", "wh-img").strip()
    diff_ids = json.loads(busybox.ok("image", "inspect", "--format", "{{json .RootFS.Layers}}", "wh-img"))
    blob = os.path.join(busybox.root, "image", "blobs", "sha256", diff_ids[-1].split(":")[1])
    with tarfile.open(blob) as tar:
        names = tar.getnames()
    assert "bin/.wh.vi" in names
    assert "home/.wh..wh..opq" in names
    assert image_id != ""


def test_layers_are_shared_between_images(busybox):
    for name in ("one", "two"):
        busybox.ok("run", "--name", name, "busybox", "touch", f"/{name}")
        busybox.ok("commit", name, f"{name}-img")
    lowers = [busybox.ok("image", "inspect", "--format", "{{.GraphDriver.Data.LowerDir}}", f"{n}-img").strip()
              for n in ("one", "two")]
    base = busybox.ok("image", "inspect", "--format", "{{.GraphDriver.Data.LowerDir}}", "busybox").strip()
    assert lowers[0].endswith(base) and lowers[1].endswith(base)
    assert lowers[0] != lowers[1]
    for name in ("one", "two"):  # a committed layer is unpacked when a container first needs it
        assert busybox.ok("run", "--rm", f"{name}-img", "ls", f"/{name}") == f"/{name}\n"
    layers = os.path.join(busybox.root, "image", "layers")
    layer_dirs = [d for d in os.listdir(layers) if os.path.isdir(os.path.join(layers, d))]
    assert len(layer_dirs) == 3  # busybox + one layer per commit


def test_history_columns(busybox):
    busybox.ok("run", "--name", "hist", "busybox", "touch", "/x")
    busybox.ok("commit", "-m", "touched", "hist", "h-img")
    lines = busybox.ok("history", "h-img").splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[1].split()[0] == busybox.ok("image", "inspect", "--format", "{{.Id}}", "h-img")[7:19]
    assert lines[-1].split()[0] == "<missing>"
    assert busybox.ok("history", "-q", "h-img").splitlines()[1] == "<missing>"


def test_export_then_import_is_a_flat_image(busybox, tmp_path):
    busybox.ok("run", "--name", "flat", "busybox", "sh", "-c", "echo data > /HelloWorld; rm /bin/vi")
    out = tmp_path / "flat.tar"
    busybox.ok("export", "-o", str(out), "flat")
    with tarfile.open(out) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("HelloWorld").read() == b"data\n"
    assert "bin/vi" not in names and "bin/busybox" in names and "bin/sh" in names
    streamed = subprocess.run(busybox.cmd("export", "flat"), capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(streamed)) as tar:
        assert set(tar.getnames()) == names
    busybox.ok("import", "-c", 'CMD ["cat", "/HelloWorld"]', str(out), "flat-img")
    assert busybox.ok("run", "--rm", "flat-img") == "data\n"
    layers = json.loads(busybox.ok("image", "inspect", "--format", "{{json .RootFS.Layers}}", "flat-img"))
    assert len(layers) == 1


def test_commit_of_a_missing_container(busybox):
    busybox.fails(1, "commit", "nosuch", "x", says="No such container: nosuch")


def test_killed_commit_leaves_the_store_consistent(busybox):
    busybox.ok("run", "--name", "big", "busybox", "sh", "-c",
               "for i in $(seq 200); do head -c 1000000 /dev/urandom > /f$i; done")
    before_images = busybox.ok("images", "-q", "--no-trunc")
    layers_dir = os.path.join(busybox.root, "image", "layers")
    before_layers = sorted(os.listdir(layers_dir))
    proc = subprocess.Popen(busybox.cmd("commit", "big", "half"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tmp = os.path.join(busybox.root, "image", "tmp")
    wait_for(lambda: os.path.isdir(tmp) and any(n.startswith("commit-") for n in os.listdir(tmp)),
             what="the commit to start writing its layer")
    proc.send_signal(signal.SIGKILL)  # our own child
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-way, not finished before
    assert busybox.ok("images", "-q", "--no-trunc") == before_images
    assert sorted(os.listdir(layers_dir)) == before_layers
    busybox.fails(1, "image", "inspect", "half", says="No such image: half")


def make_upper(path) -> None:
    """An overlay upper dir with every kind of entry a layer tar carries, and some it must not."""
    os.makedirs(path / "d" / "sub")
    (path / "d" / "file").write_text("content\n")
    os.chown(path / "d" / "file", 1234, 5678)
    os.chmod(path / "d" / "file", 0o4751)
    os.setxattr(path / "d" / "file", "user.k", b"val")
    os.link(path / "d" / "file", path / "d" / "hard")
    os.link(path / "d" / "file", path / "zz-hard")  # the same inode, near the end
    os.symlink("../file", path / "d" / "sub" / "link")
    os.symlink("x" * 150, path / "longlink")
    os.mkfifo(path / "d" / "fifo")
    os.mknod(path / "d" / "null", 0o644 | 0o020000, os.makedev(1, 3))
    os.mknod(path / "d" / "gone", 0o600 | 0o020000, os.makedev(0, 0))  # a whiteout
    os.mkdir(path / "opaque")
    os.setxattr(path / "opaque", "trusted.overlay.opaque", b"y")
    (path / "opaque" / "only").write_text("fresh\n")
    os.mkdir(path / "many")
    for i in range(40):
        (path / "many" / f"f{i}").write_text(f"{i}\n")
    (path / "big").write_bytes(os.urandom(100_000))  # sent file to file
    (path / "many" / "big2").write_bytes(os.urandom(70_000))
    (path / "empty").write_bytes(b"")
    os.setxattr(path / "empty", "trusted.overlay.origin", b"overlay's own")
    (path / ("n" * 120)).write_text("long name\n")
    (path / "h\u00e9llo").write_text("utf-8 name\n")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path / "sock"))


def write_layer(upper, tar_path) -> bytes:
    fd = os.open(tar_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        diff_id = layer_diff.LayerWriter(str(upper), fd).write()
    finally:
        os.close(fd)
    data = tar_path.read_bytes()
    tar_path.unlink()
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    return data


def test_layer_tar_of_an_upper_dir(tmp_path):
    upper = tmp_path / "upper"
    make_upper(upper)
    with tarfile.open(fileobj=io.BytesIO(write_layer(upper, tmp_path / "layer.tar"))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("big").read() == (upper / "big").read_bytes()
    assert members["d/file"].mode == 0o4751 and (members["d/file"].uid, members["d/file"].gid) == (1234, 5678)
    assert members["d/file"].pax_headers["SCHILY.xattr.user.k"] == "val"
    assert members["d/hard"].islnk() and members["d/hard"].linkname == "d/file"
    assert members["zz-hard"].islnk() and members["zz-hard"].linkname == "d/file"
    assert members["d/sub/link"].issym() and members["d/sub/link"].linkname == "../file"
    assert members["longlink"].linkname == "x" * 150
    assert members["d/fifo"].isfifo()
    assert members["d/null"].ischr() and (members["d/null"].devmajor, members["d/null"].devminor) == (1, 3)
    assert members["d/.wh.gone"].isfile() and members["d/.wh.gone"].size == 0 and "d/gone" not in members
    assert "opaque/.wh..wh..opq" in members
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for m in members.values() for k in m.pax_headers)
    assert "n" * 120 in members and "h\u00e9llo" in members
    assert "sock" not in members
    seen = set()
    for name in members:  # parents first
        parent = name.rpartition("/")[0]
        assert not parent or parent in seen, name
        seen.add(name)


def members(data: "bytes | tarfile.TarFile", strip: str = "") -> list[tuple]:
    """Every member of a tar as the fields a reader sees (header fields, xattrs, content hash),
    in order; with `strip`, only the members under that directory, named relative to it."""
    found = []
    with tarfile.open(fileobj=io.BytesIO(data)) if isinstance(data, bytes) else contextlib.nullcontext(data) as tar:
        for m in tar.getmembers():
            if strip and not m.name.startswith(strip):
                continue
            content = hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isreg() else None
            link = m.linkname.removeprefix(strip) if m.islnk() else m.linkname
            found.append((m.name.removeprefix(strip), m.type, m.mode, m.uid, m.gid, m.mtime, m.size, link,
                          m.devmajor, m.devminor, sorted((k, v) for k, v in m.pax_headers.items()
                                                         if k not in ("path", "linkpath")), content))
    return found


@pytest.fixture
def shm_path():
    """A directory in tmpfs: trees of thousands of files are made there in a fraction of the time."""
    import pathlib
    import tempfile

    path = tempfile.mkdtemp(prefix="berth-test-layer-", dir="/dev/shm")
    yield pathlib.Path(path)
    shutil.rmtree(path)


def padding(directory, count: int, size: int = 0) -> None:
    """Files of `size` bytes (sparse) in `directory` until it holds `count`."""
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(len(os.listdir(directory)), count):
        fd = os.open(directory / f"p{i:05}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(fd, size)
        os.close(fd)


def test_layer_tar_is_the_same_whichever_process_writes_an_entry(shm_path):
    """A layer of many entries is split between this process and a forked helper at its middle
    entry: wherever the middle falls in a tree (hard links to an entry before it, large files,
    whiteouts, opaque directories), every entry comes out as when one process writes it. The
    tree under m/ is written alone (too few entries for a helper) and then inside a tree of
    thousands of entries, padded so that the middle falls on each of its entries in turn."""
    upper = shm_path / "upper"
    make_upper(upper / "m")
    alone = members(write_layer(upper / "m", shm_path / "layer.tar"))
    order = layer_diff.layer_order(str(upper / "m"))
    before = layer_diff.HELPER_MIN // 2  # 0-pad/ sorts before m/, zzz-pad/ after it
    padding(upper / "0-pad", before)
    # the middle entry: m/ itself, then each entry under it (of many/f*, a few are enough)
    splits = [0] + [i + 1 for i, (_, parent, name, _) in enumerate(order)
                    if not (parent == "many" and name[1:].isdigit() and int(name[1:]) >= 3)]
    for index in splits:
        middle = before + 1 + index
        padding(upper / "zzz-pad", 2 * middle - (before + 1) - (len(order) + 1) - 1)
        entries = layer_diff.layer_order(str(upper))
        assert len(entries) >= layer_diff.HELPER_MIN  # a helper writes the second half
        assert len(entries) // 2 == middle, index
        with tarfile.open(fileobj=io.BytesIO(write_layer(upper, shm_path / "layer.tar"))) as tar:
            names = tar.getnames()
            assert members(tar, strip="m/") == alone, f"split at entry {index} of m/"
        after = len(os.listdir(upper / "zzz-pad"))
        assert names[:before + 1] == ["0-pad"] + [f"0-pad/p{i:05}" for i in range(before)]
        assert names[-after - 1:] == ["zzz-pad"] + [f"zzz-pad/p{i:05}" for i in range(after)]


def test_layer_tar_when_the_helper_runs_out_of_room(shm_path):
    """The helper passes its part back in a region of HELPER_REGION bytes: a second half of
    small files larger than that is finished by this process, from where the helper stopped."""
    upper = shm_path / "upper"
    small = layer_diff.SEND_MIN - 1  # goes through the helper's region, not file to file
    count = layer_diff.HELPER_REGION // (small + 1 + 512) + 100
    padding(upper / "a", count)  # the first half: empty files
    make_upper(upper / "m")
    padding(upper / "z", count, small)  # the second half: more than the helper can hold
    data = write_layer(upper, shm_path / "layer.tar")
    found = members(data)
    zero = hashlib.sha256(bytes(small)).hexdigest()
    assert [(name, size, content) for name, _, _, _, _, _, size, _, _, _, _, content in found
            if name.startswith("z/")] == [(f"z/p{i:05}", small, zero) for i in range(count)]
    alone = members(write_layer(upper / "m", shm_path / "alone.tar"))
    assert members(data, strip="m/") == alone


def test_commit_of_many_files(busybox):
    busybox.ok("run", "--name", "many", "busybox", "sh", "-c",
               "mkdir /many && cd /many && for i in $(seq 2500); do echo $i > f$i; done; rm /bin/vi")
    busybox.ok("commit", "many", "many-img")
    diff_ids = json.loads(busybox.ok("image", "inspect", "--format", "{{json .RootFS.Layers}}", "many-img"))
    blob = os.path.join(busybox.root, "image", "blobs", "sha256", diff_ids[-1].split(":")[1])
    with open(blob, "rb") as f:
        assert "sha256:" + hashlib.sha256(f.read()).hexdigest() == diff_ids[-1]
    out = busybox.ok("run", "--rm", "many-img", "sh", "-c", "ls /many | wc -l; cat /many/f1234; ls /bin/vi 2>&1; true")
    lines = out.splitlines()
    assert lines[:2] == ["2500", "1234"] and "No such file" in lines[2]
