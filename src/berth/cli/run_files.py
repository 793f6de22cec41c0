"""The files `run`/`create` flags name: --env-file (read as docker's CLI reads it) and
--cidfile (made as docker's CLI makes it). Loaded only when one of them is given."""

import os

from berth.errors import BerthError, InvalidArgument


def read_env_file(path: str) -> list[str]:
    """docker's --env-file (opts.parseKeyValueFile): KEY=VALUE lines, the value passed
    through untrimmed; `KEY` alone takes the value from our environment; a name with a space
    or tab in it is refused."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise InvalidArgument(f"open {path}: {err.strerror.lower()}") from None
    env = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            line = raw.removesuffix(b"\r").decode("utf-8").lstrip()
        except UnicodeDecodeError:
            raise InvalidArgument(f"env file {path} contains invalid utf8 bytes at line {number}") from None
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if " " in key or "\t" in key:
            raise InvalidArgument(f"invalid env file ({path}): variable '{key}' contains whitespaces")
        if not key:
            raise InvalidArgument(f"invalid env file ({path}): no variable name on line '{line}'")
        if eq:
            env.append(f"{key}={value}")
        elif key in os.environ:
            env.append(f"{key}={os.environ[key]}")
    return env


class CidFile:
    """docker's --cidfile: made (exclusively) before the create, the ID written after it;
    removed when the create failed."""

    def __init__(self, path: str):
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            raise InvalidArgument(f"container ID file found, make sure the other container isn't running or "
                                  f"delete {path}") from None
        except OSError as err:
            raise InvalidArgument(f"failed to create the container ID file: open {path}: "
                                  f"{err.strerror.lower()}") from None

    def write(self, container_id: str) -> None:
        try:
            os.write(self.fd, container_id.encode())
        except OSError as err:
            raise BerthError(f"failed to write the container ID to the file: {err.strerror.lower()}") from None
        finally:
            os.close(self.fd)

    def abandon(self) -> None:
        """After a failed create: the file goes (docker's cidFile.Close)."""
        os.close(self.fd)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
