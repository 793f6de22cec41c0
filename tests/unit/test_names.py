"""Random container names look like docker's, and user names follow its rule."""

import os

import pytest

from berth.engine.names import ADJECTIVES, SURNAMES, random_name, valid_name


def test_lists_are_lowercase_unique_and_sizeable():
    for words in (ADJECTIVES, SURNAMES):
        assert len(set(words)) == len(words)
        assert all(w.isascii() and w.isalpha() and w.islower() for w in words)
    assert len(ADJECTIVES) >= 100
    assert len(SURNAMES) >= 200


def test_random_name_is_adjective_underscore_surname():
    for _ in range(200):
        name = random_name()
        adjective, surname = name.split("_")
        assert adjective in ADJECTIVES
        assert surname in SURNAMES
        assert valid_name(name)


def test_retry_appends_one_digit():
    name = random_name(retry=1)
    adjective, rest = name.split("_")
    assert adjective in ADJECTIVES
    assert rest[:-1] in SURNAMES
    assert rest[-1].isdigit()


def test_names_vary():
    assert len({random_name() for _ in range(50)}) > 40


def test_never_boring_wozniak(monkeypatch):
    # The kernel's randomness (the environment, not berth) is made to draw boring, wozniak first:
    # berth must draw again.
    picks = iter([ADJECTIVES.index("boring"), SURNAMES.index("wozniak"), 0, 0])
    monkeypatch.setattr(os, "urandom", lambda n: next(picks).to_bytes(n, "little"))
    assert random_name() == f"{ADJECTIVES[0]}_{SURNAMES[0]}"


def test_taken_names_are_retried_with_a_digit():
    seen = []

    def taken(name):
        seen.append(name)
        return len(seen) == 1

    name = random_name(taken)
    assert name == seen[-1]
    assert len(seen) == 2
    assert name[-1].isdigit()
    assert not seen[0][-1].isdigit()


def test_gives_up_when_every_name_is_taken():
    calls = []

    def taken(name):
        calls.append(name)
        return True

    with pytest.raises(ValueError, match="unique container name"):
        random_name(taken)
    assert len(calls) == 6


@pytest.mark.parametrize("name", ["ab", "web", "/web", "my_app.v1-2", "A1", "0x", "a_"])
def test_valid_names(name):
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", "a", "/a", "_ab", "-ab", ".ab", "a b", "a/b", "é1",
                                  "//ab", "ab!"])
def test_invalid_names(name):
    assert not valid_name(name)
