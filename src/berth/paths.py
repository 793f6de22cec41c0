"""Where berth keeps things: the durable root and the per-boot run root (DESIGN.md, State on disk)."""

import os

DEFAULT_ROOT = "/var/lib/berth"
DEFAULT_RUN_ROOT = "/run/berth"


class Paths:
    __slots__ = ("root", "run_root")

    def __init__(self, root: str | None = None, run_root: str | None = None):
        self.root = os.path.abspath(root or os.environ.get("BERTH_ROOT") or DEFAULT_ROOT)
        self.run_root = os.path.abspath(run_root or os.environ.get("BERTH_RUN_ROOT") or DEFAULT_RUN_ROOT)

    @property
    def images(self) -> str:
        return os.path.join(self.root, "image")

    @property
    def containers(self) -> str:
        return os.path.join(self.root, "containers")

    @property
    def names(self) -> str:
        return os.path.join(self.root, "names")

    def container(self, container_id: str) -> str:
        return os.path.join(self.root, "containers", container_id)

    def container_run(self, container_id: str) -> str:
        return os.path.join(self.run_root, "containers", container_id)
