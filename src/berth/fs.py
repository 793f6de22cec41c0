"""Small filesystem helpers used everywhere: atomic JSON, locks, tree removal, the modes of
berth's state (DESIGN.md: roots 0711, object directories 0700, records and logs 0600), and
output files the user names."""

import errno
import fcntl
import os

from berth import fastjson as json

ROOT_MODE = 0o711  # --root and --run-root: others may pass through, never list or read
PRIVATE_DIR = 0o700  # everything below the roots that berth keeps for itself
RECORD = 0o600  # records, logs, locks
PROCESS_UMASK = 0o022  # every berth process: modes are chosen explicitly, never inherited
USER_UMASK = PROCESS_UMASK  # the umask berth was started with: files the user asks for honour it


READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def set_process_umask() -> None:
    """Called first by every berth entry point: an inherited umask (000) must not widen what
    berth creates; the one we replace still applies to output files (`-o FILE`)."""
    global USER_UMASK
    USER_UMASK = os.umask(PROCESS_UMASK)


def read_json(path: str):
    with open(path, "rb") as f:
        return json.loads(f.read())


def write_json(path: str, data, durable: bool = True) -> None:
    """Write `data` as JSON so readers see the old or the new file, never a torn one."""
    write_bytes(path, json.dumps(data).encode(), durable)


def write_bytes(path: str, data: bytes, durable: bool = True, mode: int = RECORD) -> None:
    """Write `data` to `path` atomically: a temp file beside it (TEMP_MARK + pid: a sweeper
    can tell a dead writer's), fsynced, renamed over it. On any failure (a full disk, a
    read-only one) the temp file is removed and `path` is untouched; an OSError then names
    `path` as what could not be written."""
    tmp = f"{path}{TEMP_MARK}{os.getpid()}-{os.urandom(4).hex()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            try:
                write_all(fd, data)
                if durable:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except BaseException:
            _ignore_missing(os.unlink, tmp, None)
            raise
    except OSError as err:
        failed("write", path, err)
        raise


TEMP_MARK = ".tmp"  # write_bytes' temp files: <target>.tmp<pid>-<random>


def temp_writer(name: str) -> int | None:
    """The pid in the name of write_bytes' temp file `name` (also the older <target>.tmp<pid>),
    or None if `name` is not one."""
    _, mark, rest = name.rpartition(TEMP_MARK)
    pid = rest.partition("-")[0]
    return int(pid) if mark and pid.isdigit() else None


def sweep_temps(target: str) -> None:
    """Remove the temp files of atomic writes of `target` whose writer died before renaming
    them into place (one listing of its directory): the next writer of a file cleans up."""
    directory, base = os.path.split(target)
    sweep_dir_temps(directory, base + TEMP_MARK)


def sweep_dir_temps(directory: str, prefix: str = "") -> None:
    """Remove every temp file of write_bytes (<target>.tmp<pid>-*) in `directory` whose name
    starts with `prefix` and whose writer is dead."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if name.startswith(prefix) and TEMP_MARK in name:
            writer = temp_writer(name)
            if writer is not None and writer != os.getpid() and not pid_alive(writer):
                _ignore_missing(os.unlink, os.path.join(directory, name), None)


def pid_alive(pid: int) -> bool:
    """The one "is this pid alive" test: it exists and is not a zombie (a process that ended
    but nobody reaped yet has done all it will do). A reused pid reads as alive: a sweeper
    then only keeps a file a while longer."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split(None, 1)[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in (b"Z", b"X")


def failed(op: str, path: str, err: OSError) -> None:
    """Make `err` say which operation on which path failed, as Go's PathError does ("write PATH:
    no space left on device", see errors.host_failure), unless it names another path already
    (a temp file's name is no help: the file is gone). The caller re-raises it."""
    if err.filename is None or temp_writer(os.path.basename(str(err.filename))) is not None:
        err.filename = path
    if err.filename == path and getattr(err, "op", None) is None:
        err.op = op


def write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written (a pipe or a signal may take fewer)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def make_dirs(path: str, mode: int = PRIVATE_DIR) -> None:
    """mkdir -p giving every directory it creates `mode` (os.makedirs gives it to the last
    one only); existing ones are left as they are."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    except FileNotFoundError:
        make_dirs(os.path.dirname(path), mode)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            pass


def secure_roots(*roots: str) -> None:
    """Make `roots` (--root, --run-root) exist with ROOT_MODE. A root with another mode was made
    by an older berth (or by hand): its top two levels are tightened once, then it gets
    ROOT_MODE, which marks it done. Costs one stat per root on every command."""
    for root in roots:
        try:
            mode = os.stat(root).st_mode & 0o7777
        except FileNotFoundError:
            parent = os.path.dirname(root)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o755, exist_ok=True)
            try:
                os.mkdir(root, ROOT_MODE)
            except FileExistsError:
                pass
            mode = os.stat(root).st_mode & 0o7777
        if mode != ROOT_MODE:
            _tighten(root)
            os.chmod(root, ROOT_MODE)


def _tighten(root: str) -> None:
    """Close what an older berth left open under `root`: every entry at the top and every
    object below containers/, volumes/ and image/ (directories 0700, records 0600). Content
    a container sees (its upper dir, its hosts file, a layer) keeps its own mode: nobody else
    can reach it once its parents are closed."""
    for top in paths_in(root):
        _chmod(top, PRIVATE_DIR if os.path.isdir(top) and not os.path.islink(top) else RECORD)
    for parent in ("containers", "volumes", "image", "image/layers"):
        for entry in paths_in(os.path.join(root, parent)):
            if os.path.islink(entry):
                continue
            if os.path.isdir(entry):
                if parent != "image/layers":  # a layer directory is the image's own "/"
                    _chmod(entry, PRIVATE_DIR)
                for name in ("config.json", "volume.json", os.path.basename(entry) + "-json.log"):
                    _chmod(os.path.join(entry, name), RECORD)
            else:
                _chmod(entry, RECORD)


def paths_in(directory: str) -> list[str]:
    """The paths of the entries of `directory` (none if it is missing or not a directory)."""
    try:
        return [os.path.join(directory, name) for name in os.listdir(directory)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _chmod(path: str, mode: int) -> None:
    try:
        os.chmod(path, mode, follow_symlinks=False)
    except (FileNotFoundError, NotImplementedError, OSError):
        pass


class OutputFile:
    """A file the user names (`-o FILE`): written under a random name beside it, created
    O_EXCL (a symlink planted there is never followed), renamed into place when complete and
    removed when not. Its mode honours the umask berth was started with, as docker's CLI does.

        with OutputFile(path) as fd: ...write to fd...
    """

    __slots__ = ("path", "tmp", "fd")

    def __init__(self, path: str):
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        self.tmp = os.path.join(directory, f".berth-{os.urandom(8).hex()}.tmp")
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.fchmod(self.fd, 0o666 & ~USER_UMASK)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, kind, _value, _tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.abandon()

    def commit(self) -> None:
        os.close(self.fd)
        self.fd = -1
        try:
            os.rename(self.tmp, self.path)
        except BaseException:
            self.abandon()
            raise

    def abandon(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _ignore_missing(os.unlink, self.tmp, None)


class Lock:
    """An exclusive flock on `path`, held for the `with` block."""

    __slots__ = ("path", "fd")

    def __init__(self, path: str):
        self.path = path
        self.fd = -1

    def __enter__(self):
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, RECORD)
        except OSError as err:  # a read-only disk
            failed("open", self.path, err)
            raise
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            self.fd = -1
            raise
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = -1


def remove_tree(path: str) -> None:
    """rm -rf without importing shutil (which drags in bz2/lzma: ~5 ms on `run`)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not _is_dir(st.st_mode):
        os.unlink(path)
        return
    for attempt in range(5):
        try:
            for _root, dirs, files, rootfd in os.fwalk(path, topdown=False):
                for name in files:
                    _ignore_missing(os.unlink, name, rootfd)
                for name in dirs:
                    try:
                        is_dir = _is_dir(os.lstat(name, dir_fd=rootfd).st_mode)
                    except FileNotFoundError:
                        continue
                    # a symlink to a directory is listed among dirs
                    _ignore_missing(os.rmdir if is_dir else os.unlink, name, rootfd)
            _ignore_missing(os.rmdir, path, None)  # another remover may finish first
            return
        except FileNotFoundError:  # `path` itself went: another remover (a trash reaper) was faster
            return
        except OSError as err:  # something was added meanwhile (a dying writer): walk again
            if err.errno != errno.ENOTEMPTY or attempt == 4:
                raise


def _ignore_missing(remove, name: str, dir_fd: int | None) -> None:
    """Another process may remove an entry first (e.g. a marker file): that is fine."""
    try:
        remove(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass


def _is_dir(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


def open_regular(name: str, dir_fd: int, flags: int = READ_FLAGS):
    """(fd opened with `flags`, fstat) of entry `name` of the open directory `dir_fd` if it is
    a regular file, else None (gone, or something else now). In a tree a container is changing,
    a name listed as a file may be a device node (a host disk, a watchdog) by the time it is
    opened, and opening a device is already an action: so the name is first opened O_PATH
    (which opens nothing), and only an fd found to be a regular file is opened for reading,
    through that fd (/proc/self/fd), never through the name again."""
    try:
        pinned = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(pinned)
        if (st.st_mode & 0o170000) != 0o100000:  # S_ISREG without importing stat
            return None
        return os.open(f"/proc/self/fd/{pinned}", flags & ~os.O_NOFOLLOW), st  # the magic link is one
    finally:
        os.close(pinned)
