"""The one module that locks, reads and writes a container's files: its record
(<root>/containers/<id>/config.json), its name (<root>/names/<name>), its markers, and its
run's processes (<run-root>/containers/<id>/state.json). Reading never changes the host.

Crash safety comes from the order of the steps, so that every prefix a killed command can
leave is a state the next command recognises (see DESIGN.md "State on disk"):

- A container exists once its config.json does. Its directory is made, and its flock taken,
  before anything else; the creator holds that flock until config.json is written. A
  directory without config.json whose flock nobody holds is an abandoned creation.
- A name is reserved by hard-linking the container's own `name` file (written whole in the
  container's private directory first) to names/<name>: the name appears complete or not at
  all. A name whose holder is an abandoned creation, or whose holder's directory is gone (a
  removal killed after it moved the directory away), is stale: the next reservation of that
  name reclaims it. Names are only ever unlinked under the names lock, re-checked there.
- Removal moves the directory to containers/.removing-<id>-<random> (the container is gone
  from then on), then releases the name, then deletes the directory. The remover's flock
  moves with the directory; trash whose flock nobody holds is reaped by the next removal.
"""

import errno
import fcntl
import os
import time

from berth.errors import Conflict, NotFound
from berth.fs import RECORD, Lock, make_dirs, pid_alive, read_json, remove_tree, write_json

TRASH_PREFIX = ".removing-"
CREATING_PREFIX = ".creating-"
NAME_ATTEMPTS = 16  # looks at a name that changes hands while we reserve it, before giving up


def is_container_id(text: str) -> bool:
    """A full container ID (64 lowercase hex digits): the only thing joined to a path."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def name_conflict(name: str, holder: str) -> Conflict:
    return Conflict(f'Conflict. The container name "/{name}" is already in use by container "{holder}". '
                    "You have to remove (or rename) that container to be able to reuse that name.")


class ContainerStore:
    __slots__ = ("paths",)

    def __init__(self, paths):
        self.paths = paths

    # -- records -----------------------------------------------------------
    def ids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.paths.containers) if len(n) == 64]
        except FileNotFoundError:
            return []

    def config_path(self, container_id: str) -> str:
        return os.path.join(self.paths.container(container_id), "config.json")

    def read(self, container_id: str) -> dict:
        """The stored record, as written; FileNotFoundError if there is no such container
        (also while it is being created: it exists once its record does)."""
        if not is_container_id(container_id):
            raise FileNotFoundError(container_id)  # as for a removed container: callers handle that
        return read_json(self.config_path(container_id))

    def write(self, record: dict, durable: bool = True) -> None:
        """Replace the record atomically. `durable=False` for what a host crash makes false
        anyway (that it runs, that it is paused): no fsync on the hot path."""
        write_json(self.config_path(record["Id"]), record, durable)

    def written_ns(self, container_id: str) -> int | None:
        try:
            return os.stat(self.config_path(container_id)).st_mtime_ns
        except FileNotFoundError:
            return None

    def lock(self, container_id: str) -> Lock:
        """The container's own flock: hold it for any read-modify-write of its record or files."""
        return Lock(os.path.join(self.paths.container(container_id), "lock"))

    def try_lock(self, container_id: str) -> int | None:
        """The container's flock if nobody holds it now (an fd to close), else None; None too
        if the container's directory is gone."""
        return _try_flock(os.path.join(self.paths.container(container_id), "lock"))

    # -- creation ----------------------------------------------------------
    def begin_create(self, container_id: str, name: str) -> Lock:
        """Make the container's directory with its flock held (until the record is written,
        or abandon_create), and reserve `name` for it (Conflict if a container has it, or one
        is being created with it). The directory is made aside (.creating-<id>) with its lock
        and name file, the name linked to that, then the directory renamed into place: a kill
        at any step leaves a dot-directory the next removal sweeps, or a name whose holder
        is no container, which the next reservation of it reclaims."""
        make_dirs(self.paths.containers)
        make_dirs(self.paths.names)
        self.reap_trash()  # what creations and removals killed midway left (one listing)
        staging = self._staging(container_id)
        os.mkdir(staging, 0o700)
        lock = Lock(os.path.join(staging, "lock"))
        try:
            lock.__enter__()
            own = os.path.join(staging, "name")
            fd = os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, RECORD)
            try:
                os.write(fd, container_id.encode())
            finally:
                os.close(fd)
            self._link_name(own, name)
            os.rename(staging, self.paths.container(container_id))
        except BaseException:
            remove_tree(staging)
            if lock.fd >= 0:
                lock.__exit__()
            raise
        return lock

    def _staging(self, container_id: str, creator: int | None = None) -> str:
        """.creating-<id>.<pid of its creator>: whether a creator lives is read from the name
        (it may not hold the flock yet), whether it finished from the flock."""
        return os.path.join(self.paths.containers, f"{CREATING_PREFIX}{container_id}.{creator or os.getpid()}")

    def _stagings(self, container_id: str) -> list[tuple[str, int]]:
        """(path, creator pid) of every staging directory of `container_id` (normally none)."""
        prefix = f"{CREATING_PREFIX}{container_id}."
        try:
            names = [n for n in os.listdir(self.paths.containers) if n.startswith(prefix)]
        except FileNotFoundError:
            return []
        return [(os.path.join(self.paths.containers, n), int(n[len(prefix):]))
                for n in names if n[len(prefix):].isdigit()]

    def abandon_create(self, container_id: str, name: str | None) -> None:
        """Undo a creation: the directory moved away first (gone at once, however the removal
        of its content is cut short), so that a kill midway leaves a name whose holder is
        gone, which the next reservation of it reclaims, and trash the next removal reaps."""
        trash = self.move_to_trash(container_id)
        if name is not None:
            self.release_name(name, container_id)
        if trash is not None:
            remove_tree(trash)

    # -- names -------------------------------------------------------------
    def name_holder(self, name: str) -> str | None:
        """The ID names/<name> points to (valid_name checked by the caller), or None."""
        try:
            with open(os.path.join(self.paths.names, name)) as f:
                return f.read().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def _link_name(self, own: str, name: str) -> None:
        """names/<name> becomes a hard link of the container's `own` name file; a stale name
        (see _stale_holder) is reclaimed."""
        path = os.path.join(self.paths.names, name)
        try:
            os.link(own, path)
            return
        except FileExistsError:
            pass
        with self._names_lock():  # the name is taken: reclaim it if its holder never was / is gone
            for _ in range(NAME_ATTEMPTS):  # a creator linking without the lock (above) may take it meanwhile
                holder = self.name_holder(name)
                if holder is not None:
                    if not self._stale_holder(holder):
                        raise name_conflict(name, holder)
                    os.unlink(path)
                try:
                    os.link(own, path)
                    return
                except FileExistsError:
                    continue
            raise Conflict(f'Conflict. The container name "/{name}" is being taken by other containers right now: '
                           "try again")

    def reclaim_stale_name(self, name: str) -> bool:
        """Free `name` if its holder is no container and nobody is creating it (a create or
        rm killed midway); True if it was freed."""
        with self._names_lock():
            holder = self.name_holder(name)
            if holder is None or not self._stale_holder(holder):
                return False
            os.unlink(os.path.join(self.paths.names, name))
            return True

    def release_name(self, name: str, container_id: str) -> None:
        """Free `name` if it still points at `container_id` (never someone else's)."""
        if self.name_holder(name) != container_id:
            return
        with self._names_lock():
            if self.name_holder(name) == container_id:
                os.unlink(os.path.join(self.paths.names, name))

    def rename(self, container_id: str, new: str) -> None:
        """Reserve `new` for the container too (Conflict leaves all as it was); the caller
        releases the old name once the record says the new one."""
        own = os.path.join(self.paths.container(container_id), "name")
        if not os.path.exists(own):  # a container made before names were linked from its directory
            with open(own, "w") as f:
                f.write(container_id)
        self._link_name(own, new)

    def _stale_holder(self, holder: str) -> bool:
        """True if `holder` is no container and nobody is creating it. Called under the names
        lock. Its creator makes .creating-<id>.<pid> (flock held from its first step), links
        the name, renames it to <id>, and holds the flock until the record is written; a
        directory without its lock file is being torn down. Staging first, then <id>: a
        rename in between is never missed. An abandoned directory found here is removed."""
        if not is_container_id(holder):
            return True  # an empty or damaged name file
        for staging, creator in self._stagings(holder):
            if pid_alive(creator):
                return False  # being created
            remove_tree(staging)
        directory = self.paths.container(holder)
        if os.path.exists(os.path.join(directory, "config.json")):
            return False  # a container (one made by an older berth may not have its lock file yet)
        lock = os.path.join(directory, "lock")
        fd = _try_flock(lock)
        if fd is None:
            if os.path.exists(lock):
                return False  # its creator, or a command working on the container, holds it
            remove_tree(directory)  # gone, or torn down midway (its lock went first)
            return True
        try:
            if os.path.exists(os.path.join(directory, "config.json")):
                return False  # a container
            remove_tree(directory)  # a creation whose creator died
        finally:
            os.close(fd)
        return True

    def _names_lock(self) -> Lock:
        return Lock(self.paths.names + ".lock")

    # -- removal -----------------------------------------------------------
    def move_to_trash(self, container_id: str) -> str | None:
        """Called with the container's flock held: from now on it does not exist. The trash
        path (to delete), or None if it was gone already."""
        trash = os.path.join(self.paths.containers, f"{TRASH_PREFIX}{container_id}-{os.urandom(4).hex()}")
        try:
            os.rename(self.paths.container(container_id), trash)
        except FileNotFoundError:
            return None
        return trash

    def remove_run_dir(self, container_id: str) -> None:
        """Its run's files (state.json, network claims, sockets): its dying supervisor may still
        be removing its own meanwhile, so a file vanishing or appearing mid-walk is retried."""
        for attempt in range(50):
            try:
                remove_tree(self.paths.container_run(container_id))
                return
            except OSError as err:
                if err.errno != errno.ENOTEMPTY or attempt == 49:
                    raise
                time.sleep(0.01)

    def reap_trash(self) -> int:
        """Delete what removals (and creations) killed midway left behind: their flock is free.
        The number reaped."""
        reaped = 0
        try:
            entries = [n for n in os.listdir(self.paths.containers) if n.startswith((TRASH_PREFIX, CREATING_PREFIX))]
        except FileNotFoundError:
            return 0
        for entry in entries:
            path = os.path.join(self.paths.containers, entry)
            if entry.startswith(CREATING_PREFIX):
                creator = entry.rpartition(".")[2]
                if not creator.isdigit() or pid_alive(int(creator)):
                    continue  # being created (its creator may not hold the flock yet)
                fd = None
            else:
                fd = _try_flock(os.path.join(path, "lock"))
                if fd is None and os.path.exists(os.path.join(path, "lock")):
                    continue  # its remover is at work (without its lock file, it is past caring)
            try:
                remove_tree(path)
                reaped += 1
            finally:
                if fd is not None:
                    os.close(fd)
        return reaped

    def reap_abandoned(self) -> list[str]:
        """The full sweep (prune): trash, creations whose creator died (with their names),
        and run directories of containers that no longer exist. IDs of abandoned creations."""
        self.reap_trash()
        abandoned = []
        for container_id in self.ids():
            if os.path.exists(self.config_path(container_id)):
                continue
            fd = self.try_lock(container_id)
            if fd is None:
                continue
            try:
                if os.path.exists(self.config_path(container_id)):
                    continue
                name = self._own_name(container_id)
                remove_tree(self.paths.container(container_id))
                if name is not None:
                    self.release_name(name, container_id)
                abandoned.append(container_id)
            finally:
                os.close(fd)
        try:
            run_dirs = os.listdir(os.path.join(self.paths.run_root, "containers"))
        except FileNotFoundError:
            run_dirs = []
        for container_id in run_dirs:
            if is_container_id(container_id) and not os.path.isdir(self.paths.container(container_id)):
                remove_tree(self.paths.container_run(container_id))
        return abandoned

    def _own_name(self, container_id: str) -> str | None:
        """The name an abandoned creation reserved, found by its name file's inode."""
        try:
            own = os.stat(os.path.join(self.paths.container(container_id), "name"))
        except FileNotFoundError:
            return None
        if own.st_nlink < 2:
            return None
        try:
            names = os.listdir(self.paths.names)
        except FileNotFoundError:
            return None
        for name in names:
            try:
                st = os.stat(os.path.join(self.paths.names, name))
            except FileNotFoundError:
                continue
            if (st.st_ino, st.st_dev) == (own.st_ino, own.st_dev):
                return name
        return None

    # -- markers -----------------------------------------------------------
    def _stopped_marker(self, container_id: str) -> str:
        return os.path.join(self.paths.container(container_id), "stopped-by-hand")

    def stopped_by_hand(self, container_id: str) -> bool:
        return os.path.exists(self._stopped_marker(container_id))

    def mark_stopped_by_hand(self, container_id: str, stopped: bool) -> None:
        """docker's HasBeenManuallyStopped: a restart policy stays off until the next start."""
        marker = self._stopped_marker(container_id)
        try:
            if stopped:
                os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, RECORD))
            elif os.path.exists(marker):
                os.unlink(marker)
        except FileNotFoundError:
            if not os.path.isdir(self.paths.container(container_id)):
                raise NotFound(f"No such container: {container_id}") from None

    # -- this boot's processes ----------------------------------------------
    def _state_file(self, container_id: str) -> str:
        return os.path.join(self.paths.container_run(container_id), "state.json")

    def processes(self, container_id: str) -> dict:
        """{"monitor": [pid, start], "pid": [pid, start]} of this boot, or {}."""
        try:
            return read_json(self._state_file(container_id))
        except (FileNotFoundError, ValueError):
            return {}

    def record_processes(self, container_id: str, monitor: list, container: list) -> None:
        make_dirs(self.paths.container_run(container_id))
        write_json(self._state_file(container_id), {"monitor": monitor, "pid": container}, durable=False)


def _try_flock(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd

