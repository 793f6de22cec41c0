"""docker's --filter rules (berth.filters): how values and keys combine, label matching,
path.Match patterns for image references, until= times, and docker's errors."""

import time

import pytest

from berth.errors import InvalidArgument, UsageError
from berth.filters import (
    labels_pass,
    parse_filters,
    passes,
    path_match,
    prune_filters,
    regexp_holds,
    spared_by,
    until_time,
)

LABELS = {"app": "demo", "tier": "worker"}


def label_check(value: str) -> bool:
    key, eq, wanted = value.partition("=")
    return key in LABELS and (not eq or LABELS[key] == wanted)


def test_label_values_must_all_hold_other_keys_values_are_alternatives():
    checks = {"label": label_check, "name": lambda v: v == "db"}
    assert passes({"label": ["app=demo", "tier=worker"]}, checks)
    assert not passes({"label": ["app=demo", "tier=web"]}, checks)  # docker ANDs labels
    assert passes({"name": ["web", "db"]}, checks)  # and ORs names
    assert not passes({"name": ["db"], "label": ["app=other"]}, checks)  # keys are AND'ed


def test_prune_labels_and_their_negation():
    assert labels_pass({"label": ["app"], "label!": ["tier=web"]}, LABELS)
    assert not labels_pass({"label!": ["app", "tier"]}, LABELS)  # every label! holds: spared
    assert labels_pass({"label!": ["app", "nope"]}, LABELS)
    filters = prune_filters(["until=1h", "label=app"])
    assert spared_by(filters, time.time(), LABELS)  # created after until
    assert not spared_by(filters, time.time() - 7200, LABELS)
    assert spared_by(filters, time.time() - 7200, {})  # not labelled app


def test_parse_errors_in_dockers_words():
    with pytest.raises(UsageError, match='invalid argument "foo" for "-f, --filter" flag: bad format of filter'):
        parse_filters(["foo"], ("name",))
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        parse_filters(["colour=red"], ("name",))
    with pytest.raises(InvalidArgument, match="invalid filter 'dangling=maybe'"):
        parse_filters(["dangling=maybe"], ("dangling",), {"dangling": lambda v: v in ("true", "false")})
    with pytest.raises(InvalidArgument, match='failed to parse value as time or duration: "bogus"'):
        until_time("bogus")


def test_names_match_as_regexps_and_references_as_path_patterns():
    assert regexp_holds("^/db$", "/db") and regexp_holds("we", "web") and not regexp_holds("(", "web")
    assert path_match("busy*", "busybox") and not path_match("*", "example.com/team/tool")
    assert path_match("*/team/*", "example.com/team/tool:1") and path_match("busybox:lat?st", "busybox:latest")
    assert path_match("[a-c]usybox", "busybox") and not path_match("[^b]usybox", "busybox")
    assert until_time("2000-01-01T00:00:00Z") == 946684800
