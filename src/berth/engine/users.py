"""Resolve docker's `-u user[:group]` against the image's /etc/passwd and /etc/group,
read straight from the layer directories (the rootfs is only mounted inside the container)."""

import os

from berth.errors import InvalidArgument

WHITEOUT_DEV = 0


class ExecUser:
    __slots__ = ("uid", "gid", "additional_gids", "home")

    def __init__(self, uid: int, gid: int, additional_gids: list[int], home: str):
        self.uid = uid
        self.gid = gid
        self.additional_gids = additional_gids
        self.home = home


def read_layered_file(layer_dirs_top_first: list[str], path: str) -> str | None:
    """The text of `path` as the overlay would show it, or None if absent."""
    for layer in layer_dirs_top_first:
        full = layer + path
        try:
            st = os.lstat(full)
        except (FileNotFoundError, NotADirectoryError):
            if _hidden_below(layer, path):
                return None
            continue
        if (st.st_mode & 0o170000) == 0o020000 and st.st_rdev == WHITEOUT_DEV:
            return None  # an overlay whiteout: deleted in this layer
        if (st.st_mode & 0o170000) != 0o100000:
            return None
        with open(full, encoding="utf-8", errors="replace") as f:
            return f.read()
    return None


def _hidden_below(layer: str, path: str) -> bool:
    """True if a parent directory of `path` is opaque or whited out in `layer`."""
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        try:
            st = os.lstat(layer + parent)
        except (FileNotFoundError, NotADirectoryError):
            parent = os.path.dirname(parent)
            continue
        if (st.st_mode & 0o170000) == 0o020000:
            return True
        try:
            if os.getxattr(layer + parent, "trusted.overlay.opaque") == b"y":
                return True
        except OSError:
            pass
        parent = os.path.dirname(parent)
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
