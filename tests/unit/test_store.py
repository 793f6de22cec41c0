"""engine.store: the order of a container's creation and removal makes every prefix a
killed command can leave recognisable. A killed command is a forked child that does the
first steps and then dies (os._exit): the kernel drops its flocks, as for SIGKILL."""

import os

import pytest

from berth.engine.store import ContainerStore
from berth.errors import Conflict
from berth.paths import Paths


@pytest.fixture
def store(tmp_path):
    return ContainerStore(Paths(str(tmp_path / "root"), str(tmp_path / "run")))


def new_id() -> str:
    return os.urandom(32).hex()


def in_child(work, then_wait: bool = False) -> int:
    """Run `work` in a forked child that then dies without cleaning up; with `then_wait`, it
    stays alive (holding what it took) until the returned write end is closed."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(write_fd)
        try:
            work()
        finally:
            if then_wait:
                os.read(read_fd, 1)
            os._exit(0)
    os.close(read_fd)
    if not then_wait:
        os.close(write_fd)
        os.waitpid(pid, 0)
        return -1
    return write_fd


def create(store, container_id: str, name: str) -> None:
    lock = store.begin_create(container_id, name)
    store.write({"Id": container_id, "Name": "/" + name, "State": {}})
    lock.__exit__()


def test_a_created_container_owns_its_name(store):
    first = new_id()
    create(store, first, "web")
    assert store.name_holder("web") == first
    with pytest.raises(Conflict, match='name "/web" is already in use by container "' + first):
        store.begin_create(new_id(), "web")
    assert store.ids() == [first]  # the refused creation left no directory


def test_a_creation_in_progress_owns_its_name(store):
    first = new_id()
    release = in_child(lambda: store.begin_create(first, "web"), then_wait=True)
    try:
        import time

        deadline = time.monotonic() + 5
        while store.name_holder("web") is None and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(Conflict):
            store.begin_create(new_id(), "web")
    finally:
        os.close(release)
        os.wait()


@pytest.mark.parametrize("steps", ["name linked", "directory in place"])
def test_a_killed_creation_frees_its_name_for_the_next(store, steps):
    dead = new_id()

    def killed():
        if steps == "name linked":  # killed between linking the name and renaming the directory
            os.makedirs(store.paths.containers, exist_ok=True)
            staging = store._staging(dead, os.getpid())
            os.makedirs(staging)
            os.close(os.open(os.path.join(staging, "lock"), os.O_CREAT | os.O_RDWR))
            with open(os.path.join(staging, "name"), "w") as f:
                f.write(dead)
            os.makedirs(store.paths.names, exist_ok=True)
            os.link(os.path.join(staging, "name"), os.path.join(store.paths.names, "web"))
        else:  # killed before the record was written
            store.begin_create(dead, "web")

    in_child(killed)
    assert store.name_holder("web") == dead
    fresh = new_id()
    create(store, fresh, "web")
    assert store.name_holder("web") == fresh
    assert not os.path.exists(store.paths.container(dead))
    assert [n for n in os.listdir(store.paths.containers) if n.startswith(".creating-")] == []


def test_a_removal_killed_after_moving_the_directory(store):
    gone = new_id()
    create(store, gone, "web")

    def killed():
        with store.lock(gone):
            store.move_to_trash(gone)  # then killed before the name is released

    in_child(killed)
    assert store.ids() == []
    trash = [n for n in os.listdir(store.paths.containers) if n.startswith(".removing-")]
    assert len(trash) == 1
    assert store.reap_trash() == 1  # its remover is gone: the next removal sweeps it
    assert os.listdir(store.paths.containers) == []
    assert store.reclaim_stale_name("web")  # the name of no container: freed
    assert store.name_holder("web") is None


def test_trash_of_a_live_remover_is_kept(store):
    busy = new_id()
    create(store, busy, "web")
    lock = store.lock(busy)
    lock.__enter__()
    try:
        store.move_to_trash(busy)
        assert store.reap_trash() == 0
    finally:
        lock.__exit__()
    assert store.reap_trash() == 1


def test_release_never_frees_someone_elses_name(store):
    owner = new_id()
    create(store, owner, "web")
    store.release_name("web", new_id())
    assert store.name_holder("web") == owner
    store.release_name("web", owner)
    assert store.name_holder("web") is None


def test_rename_keeps_the_old_name_until_released(store):
    owner, other = new_id(), new_id()
    create(store, owner, "web")
    create(store, other, "db")
    with pytest.raises(Conflict):
        store.rename(owner, "db")
    store.rename(owner, "api")
    assert store.name_holder("api") == owner and store.name_holder("web") == owner
    store.release_name("web", owner)
    assert store.name_holder("web") is None


def test_full_sweep_removes_abandoned_creations_and_run_dirs(store):
    dead, live = new_id(), new_id()
    in_child(lambda: store.begin_create(dead, "half"))
    create(store, live, "whole")
    os.makedirs(store.paths.container_run(new_id()))  # the run dir of a container that is gone
    os.makedirs(store.paths.container_run(live))
    assert store.reap_abandoned() == [dead]
    assert store.ids() == [live] and store.name_holder("half") is None
    assert os.listdir(os.path.join(store.paths.run_root, "containers")) == [live]


def test_a_creation_rolled_back_midway_frees_its_name(store):
    """Killed while its rollback deleted the directory's content (the lock file already gone):
    the name is stale, not held."""
    dead = new_id()
    create(store, dead, "web")
    os.unlink(os.path.join(store.paths.container(dead), "config.json"))
    os.unlink(os.path.join(store.paths.container(dead), "lock"))
    create(store, new_id(), "web")
    assert not os.path.exists(store.paths.container(dead))


def test_a_container_without_a_lock_file_keeps_its_name(store):
    """Made by an older berth, never locked since: it has its record, so it is a container."""
    old = new_id()
    create(store, old, "web")
    os.unlink(os.path.join(store.paths.container(old), "lock"))
    with pytest.raises(Conflict):
        store.begin_create(new_id(), "web")
    assert os.path.exists(store.config_path(old))



def test_a_name_taken_by_a_lock_free_linker_while_we_reclaim_it_is_a_conflict(store, monkeypatch):
    """The stress test's race: a stale name is reclaimed under the names lock, and another
    creator links it on its lock-free first try just before we do; we see that holder and
    refuse in docker's words (this failed with FileExistsError)."""
    racer = new_id()
    racer_lock = store.begin_create(racer, "other")  # a creation in progress: its name file is linked
    target = os.path.join(store.paths.names, "race")
    with open(target, "w") as f:
        f.write(new_id())  # a holder that is no container: stale
    real_link = os.link
    calls = []

    def link(source, destination):
        calls.append(destination)
        if destination == target and len(calls) == 2:  # our link after reclaiming: the racer is first
            real_link(os.path.join(store.paths.names, "other"), target)
        return real_link(source, destination)

    monkeypatch.setattr(os, "link", link)
    with pytest.raises(Conflict, match='name "/race" is already in use by container "' + racer):
        store.begin_create(new_id(), "race")
    monkeypatch.undo()
    assert store.name_holder("race") == racer
    racer_lock.__exit__()
