"""Containers on a full disk (issue 13, item 7): a create or run that cannot write fails with
docker's one-line error and exit code, leaving no name, no container directory and no
temp file behind, and the same name works as soon as there is room again."""

import os

from conftest import refused
from test_crash_images import fill, small_root  # noqa: F401 - small_root is a fixture used below


def entries(root: str, *parts: str) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(root, *parts)))
    except FileNotFoundError:
        return []


def test_full_disk_create_and_run_leave_no_name_or_directory(small_root):
    b = small_root
    b.import_busybox(b.busybox_tar)
    b.ok("create", "--name", "kept", "busybox", "true")  # the store and the names directory exist
    names_before = entries(b.root, "names")
    filler = fill(b.root)
    try:
        for command in (("create", "--name", "web", "busybox", "true"),
                        ("run", "--name", "web", "busybox", "true"),
                        ("run", "-d", "--name", "web", "busybox", "sleep", "5")):
            err = refused(b(*command), 125, "no space left on device", " ".join(command))
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error") and "Errno" not in err, err
            assert entries(b.root, "names") == names_before
            assert [n for n in entries(b.root, "containers") if n != b.ok("inspect", "-f", "{{.Id}}", "kept").strip()] \
                == []
        assert "web" not in b.ok("ps", "-a", "--format", "{{.Names}}")
    finally:
        os.unlink(filler)
    b.ok("run", "--name", "web", "busybox", "true")  # room again: the same name at once
    b.ok("rm", "web", "kept")
    assert entries(b.root, "names") == []
    assert entries(b.root, "containers") == []
