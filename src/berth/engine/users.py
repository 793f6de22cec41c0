"""Resolve docker's `-u user[:group]` against the image's /etc/passwd and /etc/group,
read straight from the layer directories (the rootfs is only mounted inside the container)."""

import os

from berth.errors import InvalidArgument
from berth.fs import DIR_FLAGS, open_regular

WHITEOUT_DEV = 0


class ExecUser:
    __slots__ = ("uid", "gid", "additional_gids", "home")

    def __init__(self, uid: int, gid: int, additional_gids: list[int], home: str):
        self.uid = uid
        self.gid = gid
        self.additional_gids = additional_gids
        self.home = home


def read_layered_file(layer_dirs_top_first: list[str], path: str) -> str | None:
    """The text of `path` as the overlay would show it, or None if absent. Each layer is walked
    by directory fds, never by a path string: the top one is a container's upper dir, which the
    container changes as we read (an /etc swapped for a symlink to a host directory)."""
    parts = [p for p in path.split("/") if p]
    for layer in layer_dirs_top_first:
        decided, text = _read_in_layer(layer, parts)
        if decided:
            return text
    return None


def _read_in_layer(layer: str, parts: list[str]) -> tuple[bool, str | None]:
    """(decided, text): decided is False when `parts` is absent from this layer and not hidden
    by it (look in the layer below); a whiteout, an opaque directory above, or something other
    than a directory on the way decide None."""
    try:
        dir_fd = os.open(layer, DIR_FLAGS)
    except OSError:
        return False, None
    try:
        opaque = False
        for i, part in enumerate(parts):
            try:
                st = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return opaque, None
            kind = st.st_mode & 0o170000
            if kind == 0o020000 and st.st_rdev == WHITEOUT_DEV:
                return True, None  # an overlay whiteout: deleted in this layer
            if i == len(parts) - 1:
                opened = open_regular(part, dir_fd) if kind == 0o100000 else None
                if opened is None:
                    return True, None
                with open(opened[0], encoding="utf-8", errors="replace") as f:
                    return True, f.read()
            if kind != 0o040000:
                return True, None  # a file or symlink where a directory should be hides what is below
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                return True, None  # replaced since the stat
            os.close(dir_fd)
            dir_fd = child
            opaque = opaque or _is_opaque(dir_fd)
        return True, None
    finally:
        os.close(dir_fd)


def _is_opaque(dir_fd: int) -> bool:
    try:
        return os.getxattr(dir_fd, "trusted.overlay.opaque") == b"y"
    except OSError:
        return False


def _entries(text: str | None, fields: int) -> list[list[str]]:
    rows = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def resolve(user: str, passwd_text: str | None, group_text: str | None, group_add=()) -> ExecUser:
    """runc/moby GetExecUser semantics: names must exist; numeric ids need not. `group_add`
    (docker's --group-add, names or ids) joins the supplementary groups."""
    user_part, _, group_part = (user or "").partition(":")
    passwd = _entries(passwd_text, 7)
    groups = _entries(group_text, 4)
    uid, gid, home, name = 0, 0, "/", None
    if user_part == "":
        user_part = "0"
    if user_part.isdigit():
        uid = int(user_part)
        match = next((p for p in passwd if p[2] == user_part), None)
    else:
        match = next((p for p in passwd if p[0] == user_part), None)
        if match is None:
            raise InvalidArgument(f"unable to find user {user_part}: no matching entries in passwd file")
    if match is not None:
        name, uid, home = match[0], int(match[2]), match[5] or "/"
        gid = int(match[3]) if match[3].isdigit() else 0
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            entry = next((g for g in groups if g[0] == group_part), None)
            if entry is None:
                raise InvalidArgument(f"unable to find group {group_part}: no matching entries in group file")
            gid = int(entry[2])
    additional = [gid]  # moby's getUser: the primary group first, then memberships
    if name is not None and not group_part:
        for g in groups:
            if name in g[3].split(",") and g[2].isdigit() and int(g[2]) != gid and int(g[2]) not in additional:
                additional.append(int(g[2]))
    for extra in group_add:
        if extra.isdigit():
            number = int(extra)
        else:
            entry = next((g for g in groups if g[0] == extra), None)
            if entry is None:
                raise InvalidArgument(f"unable to find group {extra}: no matching entries in group file")
            number = int(entry[2])
        if number not in additional:
            additional.append(number)
    return ExecUser(uid, gid, additional, home)
