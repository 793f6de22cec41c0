"""image prune, dangling images, system df."""

import os


def test_prune_removes_dangling_images_only(busybox):
    busybox.ok("run", "--name", "base", "busybox", "touch", "/a")
    first = busybox.ok("commit", "base", "mine:1").strip()
    busybox.ok("run", "--name", "again", "busybox", "touch", "/b")
    busybox.ok("commit", "again", "mine:1")  # the tag moves: the first image is dangling now
    dangling = busybox.ok("images", "--filter", "dangling=true", "-q", "--no-trunc").split()
    assert dangling == [first]
    assert "<none>" in busybox.ok("images")
    out = busybox.ok("image", "prune", "-f")
    assert f"deleted: {first}" in out and "Total reclaimed space:" in out
    assert busybox.ok("images", "--filter", "dangling=true", "-q") == ""
    assert busybox.ok("images", "-q", "mine:1").strip() != ""


def test_prune_all_keeps_images_in_use(busybox):
    busybox.ok("create", "--name", "user", "busybox", "true")
    busybox.ok("run", "--name", "src", "busybox", "touch", "/x")
    busybox.ok("commit", "src", "unused:1")
    busybox.ok("rm", "src")
    out = busybox.ok("image", "prune", "-a", "-f")
    assert "untagged: unused:1" in out
    assert busybox.ok("images", "--format", "{{.Repository}}").split() == ["busybox"]


def test_prune_without_force_asks(busybox):
    result = busybox("image", "prune", input="n\n")
    assert result.returncode == 0
    assert "Are you sure you want to continue? [y/N]" in result.stdout


def test_prune_clears_what_a_killed_command_left(busybox):
    tmp = os.path.join(busybox.root, "image", "tmp")
    layers = os.path.join(busybox.root, "image", "layers")
    with open(os.path.join(tmp, "commit-999999999-deadbeef"), "wb") as f:  # no such pid
        f.write(b"x" * 1000)
    live = os.path.join(tmp, f"load-{os.getpid()}-cafe")  # a live command's staging: kept
    os.mkdir(live)
    with open(os.path.join(tmp, "stray"), "wb") as f:
        f.write(b"x" * 1000)
    orphan = os.path.join(layers, "0" * 64)
    os.mkdir(orphan)
    busybox.ok("image", "prune", "-f")
    assert os.listdir(tmp) == [os.path.basename(live)]
    os.rmdir(live)
    assert not os.path.exists(orphan)
    assert busybox.ok("run", "--rm", "busybox", "true") == ""


def test_system_df(busybox):
    busybox.ok("run", "--name", "writer", "busybox", "sh", "-c", "head -c 100000 /dev/zero > /f")
    lines = busybox.ok("system", "df").splitlines()
    assert lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert lines[1].split()[:3] == ["Images", "1", "1"]
    assert lines[2].split()[:4] == ["Containers", "1", "0", "100kB"]
