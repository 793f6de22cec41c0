"""docker's --filter key=value lists (ps, images, volume ls, network ls, the prunes): every
command says which keys it takes and which values are valid; `passes` applies docker's rule
of how values combine (filters.Args in moby): the values of one key are OR'ed, except those
of `label`, which must all hold (MatchKVList); different keys are AND'ed. Prunes' `label!`
spares what all its values hold for (labels_pass)."""

from berth.errors import InvalidArgument, UsageError

# keys whose values must all hold, as moby's MatchKVList checks them
ALL_VALUES = ("label",)


def parse_filters(values: list[str], accepted: tuple, valid: dict | None = None, flag: str = "-f, --filter") -> dict:
    """{key: [values]}; `valid` maps a key to a predicate its values must pass. A value
    without `=` is a flag docker's CLI cannot parse (exit 125); `flag` is how it is spelled."""
    filters: dict[str, list[str]] = {}
    for item in values:
        key, eq, value = item.partition("=")
        if not eq:
            raise UsageError(f'invalid argument "{item}" for "{flag}" flag: bad format of filter (expected name=value)')
        key = key.strip().lower()
        if key not in accepted:
            raise InvalidArgument(f"invalid filter '{key}'")
        check = (valid or {}).get(key)
        if check is not None and not check(value):
            raise InvalidArgument(f"invalid filter '{key}={value}'")
        filters.setdefault(key, []).append(value)
    return filters


def passes(filters: dict, checks: dict) -> bool:
    """Does an object pass every filter? `checks` maps each key to a test of one value."""
    for key, values in filters.items():
        check = checks.get(key)
        if check is None:
            continue  # a key the caller applies itself (before/since anchors, dangling...)
        if not (all if key in ALL_VALUES else any)(check(value) for value in values):
            return False
    return True


def label_holds(labels: dict | None, wanted: str) -> bool:
    """`label=key` (the label is set) or `label=key=value` (set to exactly that)."""
    key, eq, value = wanted.partition("=")
    labels = labels or {}
    return key in labels and (not eq or labels[key] == value)


def labels_pass(filters: dict, labels: dict | None) -> bool:
    """moby's matchLabels (prunes): every `label` holds, and not every `label!` holds."""
    if not all(label_holds(labels, v) for v in filters.get("label", ())):
        return False
    excluded = filters.get("label!")
    return not excluded or not all(label_holds(labels, v) for v in excluded)


def regexp_holds(pattern: str, text: str) -> bool:
    """moby's Args.Match for one value: equal, or the value as a regular expression found in
    `text` (an invalid expression matches nothing)."""
    if pattern == text:
        return True
    import re  # lazy: only filters that match names and IDs

    try:
        return re.search(pattern, text) is not None
    except re.error:
        return False


def path_match(pattern: str, name: str) -> bool:
    """Go's path.Match: `*` is any run of characters but `/`, `?` one of them, `[...]` a
    class (`[^...]` negated), `\\` quotes the next character."""
    import re  # lazy: only reference filters

    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\" and i < len(pattern):
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument("syntax error in pattern")
            body = pattern[i:end]
            out.append("[" + ("^" + body[1:] if body.startswith("^") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    return re.fullmatch("".join(out), name) is not None


def until_time(value: str) -> float:
    """An `until=` value (a Go duration before now, an RFC 3339-like time or a Unix
    timestamp, as docker's timetypes read it) -> Unix time."""
    import time  # lazy: only until=

    from berth.gotime import get_timestamp  # lazy: only until=

    try:
        seconds, _, fraction = get_timestamp(value, time.time_ns()).partition(".")
    except ValueError as err:
        raise InvalidArgument(str(err)) from None
    return int(seconds) + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


# -- prunes ----------------------------------------------------------------------------------

PRUNE_FILTERS = ("until", "label", "label!")


def prune_filters(values: list[str], accepted: tuple = PRUNE_FILTERS) -> dict:
    """docker's prune --filter values: until=<time> (created before it), label=, label!=;
    until as the Unix time it means."""
    filters = parse_filters(values, accepted, flag="--filter")  # prunes: -f is --force
    if "until" in filters:
        filters["until"] = [until_time(value) for value in filters["until"]]
    return filters


def spared_by(filters: dict, created: float, labels: dict | None) -> bool:
    """Does a prune's `filters` spare an object created then with these labels?"""
    if not filters:
        return False
    return not labels_pass(filters, labels) or any(created >= until for until in filters.get("until", ()))
