"""STUB of the embedded DNS resolver's engine API (the `dns` branch replaces this module): the
points where user-defined networking tells the resolver that its table changed."""


def serve_container(engine, record: dict) -> None:
    """A container on a user-defined network got its namespace and addresses (start, connect)."""


def forget_container(engine, container_id: str) -> None:
    """A container stopped, was removed or left its last user-defined network."""


def refresh(engine) -> None:
    """Names, aliases or addresses changed (connect, disconnect, rename, start, stop)."""
