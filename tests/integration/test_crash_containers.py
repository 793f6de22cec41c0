"""Containers on a full disk (issue 13, item 7): a create or run that cannot write fails with
docker's one-line error and exit code, leaving no name, no container directory and no
temp file behind, and the same name works as soon as there is room again."""

import os
import shutil
import subprocess
import sys
import time

from test_crash_images import fill, small_root  # noqa: F401 - small_root is a fixture used below

from conftest import refused


def entries(root: str, *parts: str) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(root, *parts)))
    except FileNotFoundError:
        return []


def test_full_disk_create_and_run_leave_no_name_or_directory(small_root):  # noqa: F811 - the fixture
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


REMOVER = """import sys
sys.path.insert(0, sys.argv[2])
from berth.fs import remove_tree
print("ready", flush=True)
sys.stdin.readline()
remove_tree(sys.argv[1])
print("removed")
"""


def test_a_tree_removed_by_another_remover_meanwhile(tmp_path):
    """Two removers of one directory (a removal deleting its trash, a create reaping it once
    its lock file is gone): one finds it there (lstat), the other deletes it before the first
    walks it. strace holds the first remover's lstat for a moment while the test is the other."""
    strace = shutil.which("strace")
    assert strace, "strace is installed by scripts/test-peers"
    tree = tmp_path / ".removing-x"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f").write_text("x")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
    remover = subprocess.Popen([sys.executable, "-c", REMOVER, str(tree), src], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert remover.stdout.readline() == "ready\n"  # imported: its next stat is remove_tree's lstat
    tracer = subprocess.Popen([strace, "-o", "/dev/null", "-p", str(remover.pid), "-e", "trace=newfstatat",
                               "-e", "inject=newfstatat:delay_exit=500000:when=1"], stderr=subprocess.PIPE, text=True)
    try:
        assert "attached" in tracer.stderr.readline()
        remover.stdin.write("go\n")
        remover.stdin.flush()
        time.sleep(0.2)  # the remover is inside its first lstat, held there for 500 ms
        shutil.rmtree(tree)  # the other remover
        out, err = remover.communicate(timeout=20)
    finally:
        if remover.poll() is None:
            remover.kill()
        tracer.wait(timeout=20)
    assert remover.returncode == 0 and out == "removed\n", err
    assert not tree.exists()
