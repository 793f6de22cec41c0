"""`berth system reset` (podman's verb; docker's equivalent is stopping dockerd and deleting
/var/lib/docker): every container, image and volume, the bridge and firewall tables berth made
for the root, and the root and run root themselves, so that berth can be uninstalled cleanly."""

import os
import subprocess

from berth.network.nft import table_name


def ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def test_reset_leaves_nothing_of_the_root(busybox):
    b = busybox
    port = "18{:03d}".format(int.from_bytes(os.urandom(1), "big"))
    b.ok("run", "-d", "--name", "web", "-p", f"{port}:80", "-v", "data:/data", "busybox", "sleep", "300")
    b.ok("create", "--name", "idle", "busybox", "true")
    b.ok("commit", "idle", "mine:1")
    assert os.path.exists(f"/sys/class/net/{b.bridge}") and table_name(b.root) in ruleset()
    pid = int(b.ok("inspect", "-f", "{{.State.Pid}}", "web"))

    assert b.ok("system", "reset", input="n\n").startswith("WARNING! This will remove:")  # asked, said no
    assert b.ok("ps", "-q", "--filter", "name=web").strip()

    assert b.ok("system", "reset", "--force") == ""
    assert not os.path.exists(f"/proc/{pid}")
    assert not os.path.exists(b.root) and not os.path.exists(b.run_root)
    assert not os.path.exists(f"/sys/class/net/{b.bridge}")
    assert table_name(b.root) not in ruleset()
    # berth still works on the same (now empty) root
    assert b.ok("ps", "-a", "-q") == "" and b.ok("images", "-q") == "" and b.ok("volume", "ls", "-q") == ""


def test_reset_refuses_while_something_is_mounted_below(busybox, tmp_path):
    b = busybox
    b.ok("create", "--name", "kept", "busybox", "true")
    mount_point = os.path.join(b.root, "extra")
    os.makedirs(mount_point)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", mount_point], check=True)
    try:
        with open(os.path.join(mount_point, "precious"), "w") as f:
            f.write("x")
        b.fails(1, "system", "reset", "-f", says=f"{mount_point} is still mounted: unmount it, then reset again")
        assert os.path.exists(os.path.join(mount_point, "precious"))
    finally:
        subprocess.run(["umount", mount_point], check=True)


def test_reset_takes_no_arguments(busybox):
    busybox.fails(1, "system", "reset", "-f", "now", says="accepts no arguments")
