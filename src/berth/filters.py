"""docker's --filter key=value lists (ps, volume ls/prune, ...): values of one key are OR'ed,
keys are AND'ed; every command says which keys it takes and which values are valid."""

from berth.errors import InvalidArgument


def parse_filters(values: list[str], accepted: tuple, valid: dict | None = None) -> dict:
    """{key: [values]}; `valid` maps a key to a predicate its values must pass."""
    filters: dict[str, list[str]] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {item}")
        key = key.strip().lower()
        if key not in accepted:
            raise InvalidArgument(f"invalid filter '{key}'")
        check = (valid or {}).get(key)
        if check is not None and not check(value):
            raise InvalidArgument(f"invalid filter '{key}={value}'")
        filters.setdefault(key, []).append(value)
    return filters
