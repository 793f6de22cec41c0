"""docker's json-file rotation, for a log with a max-size (lean.open_writer): before an
entry is written to a log of `max_size` bytes or more, <log>.1 becomes <log>.2 and so on, the
log becomes <log>.1 and a new one is begun; with `compress`, <log>.1 is gzipped by a child."""

import os

from berth.monitor.logfile import LogWriter, reason


class RotatingLogWriter(LogWriter):
    __slots__ = ()

    def _before_rotation(self, pieces: list[bytes], start: int) -> int:
        """Rotate if the log is full, then how far pieces[start:] fit: as docker checks before
        each entry, the one that fills the log is written whole."""
        if self.size >= self.max_size:
            self._rotate()
        end, size = start + 1, self.size + len(pieces[start])
        while end < len(pieces) and size < self.max_size:
            size += len(pieces[end])
            end += 1
        return end

    def _rotate(self) -> None:
        """docker's rotation (loggerutils.rotate). A failure leaves the log as it is, tried
        again once another max_size has been written to it."""
        self.size = 0
        try:
            if self.max_files < 2:
                os.ftruncate(self.fd, 0)
                return
            if self.compress:
                self._wait_compressor()
            last = f"{self.path}.{self.max_files - 1}"
            for name in (last, last + ".gz"):
                _remove(name)
            for i in range(self.max_files - 1, 1, -1):
                for ext in ("", ".gz"):  # a .1 whose compressor died stays as it is, and moves on
                    _rename(f"{self.path}.{i - 1}{ext}", f"{self.path}.{i}{ext}")
            os.rename(self.path, self.path + ".1")
        except OSError as err:
            self.lost_reason = self.lost_reason or reason(err)
            return
        os.close(self.fd)
        self.fd = -1
        if self._open() and self.compress:
            self._start_compressor()

    def _start_compressor(self) -> None:
        """Fork a child that gzips <log>.1 into <log>.1.gz. It holds an flock on <log>.1 while
        it works: a later rotation, even by another supervisor of the container, waits for it."""
        rotated = self.path + ".1"
        try:
            fd = os.open(rotated, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            import fcntl  # lazy: only a compressed rotation

            fcntl.flock(fd, fcntl.LOCK_EX)
            self.compressor = os.fork()
            if self.compressor == 0:
                try:
                    os.setpgid(0, 0)  # the caller's terminal signals are not ours
                    _gzip_rotated(fd, rotated)
                finally:
                    os._exit(0)
        except OSError:
            self.compressor = 0
        finally:
            os.close(fd)  # the child's copy keeps the lock

    def _reap_compressor(self, flags: int) -> None:
        """Reap our compressor once it is done (waiting for it without WNOHANG)."""
        try:
            if os.waitpid(self.compressor, flags)[0] == 0:
                return
        except ChildProcessError:  # reaped with the container's orphans
            pass
        self.compressor = 0

    def _wait_compressor(self) -> None:
        """Wait until no child gzips <log>.1 (ours, or one a previous supervisor forked)."""
        if self.compressor:
            self._reap_compressor(0)
        try:
            fd = os.open(self.path + ".1", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            import fcntl  # lazy: only a compressed rotation

            fcntl.flock(fd, fcntl.LOCK_EX)
        finally:
            os.close(fd)


def _gzip_rotated(fd: int, path: str) -> None:
    """In the compressor child: <path> (open on `fd`) -> <path>.gz, then <path> goes, unless it
    is another file by now. gzip.BestSpeed, as docker."""
    import zlib  # lazy: only the compressor child

    from berth.fs import write_all  # lazy: only the compressor child
    from berth.runtime.forked import keep_only_fds  # lazy: only the compressor child

    keep_only_fds(fd)  # nothing of the supervisor's (pipes, sockets) is held by this child

    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    out = os.open(path + ".gz", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        while chunk := os.read(fd, 1 << 20):
            write_all(out, packer.compress(chunk))
        write_all(out, packer.flush())
    finally:
        os.close(out)
    if os.stat(path).st_ino == os.fstat(fd).st_ino:
        os.unlink(path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rename(source: str, target: str) -> None:
    try:
        os.rename(source, target)
    except FileNotFoundError:
        pass
