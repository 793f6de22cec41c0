"""The registry client's pure parts: docker's name normalization as pull uses it, the
WWW-Authenticate challenge parser, and which registries are insecure by default."""

import io

from berth.cli.registry import Display
from berth.engine.pull import message
from berth.image import credentials, reference, registry


def test_names_normalize_like_docker():
    cases = {
        "busybox": ("docker.io", "library/busybox", "latest"),
        "user/app:1": ("docker.io", "user/app", "1"),
        "index.docker.io/library/busybox": ("docker.io", "library/busybox", "latest"),
        "localhost:5000/x": ("localhost:5000", "x", "latest"),
        "127.0.0.1:5000/a/b:tag": ("127.0.0.1:5000", "a/b", "tag"),
    }
    for ref, (domain, path, tag) in cases.items():
        parsed = reference.parse(ref)
        assert (parsed.domain, parsed.path, parsed.tag) == (domain, path, tag)
    digest = "sha256:" + "a" * 64
    assert reference.parse(f"busybox@{digest}").digest == digest
    assert credentials.auth_key("docker.io") == "https://index.docker.io/v1/"
    assert credentials.auth_key("localhost:5000") == "localhost:5000"


def test_challenges_parse():
    scheme, params = registry.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry",
                      "scope": "repository:a/b:pull,push"}
    assert registry.parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert registry.parse_challenge("") == ("", {})


def test_loopback_and_listed_registries_are_insecure():
    settings = registry.Settings(insecure=["myreg:5000", "10.9.0.0/16"])
    assert settings.is_insecure("127.0.0.1:5000")
    assert settings.is_insecure("myreg:5000")
    assert settings.is_insecure("10.9.1.2:443")
    assert not settings.is_insecure("10.8.1.2")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _shown(stream, messages) -> str:
    display = Display(stream)
    for jm in messages:
        display.show(jm)
    return stream.getvalue()


MESSAGES = [
    message("latest", "Pulling from library/x"),
    message("aaa", "Pulling fs layer"),
    message("bbb", "Pulling fs layer"),
    message("aaa", "Downloading", 5, 10),
    message("aaa", "Pull complete"),
    message(None, "Digest: sha256:" + "0" * 64),
]


def test_progress_without_a_terminal_is_docker_plain_lines():
    assert _shown(io.StringIO(), MESSAGES) == (
        "latest: Pulling from library/x\naaa: Pulling fs layer\nbbb: Pulling fs layer\naaa: Pull complete\n"
        "Digest: sha256:" + "0" * 64 + "\n")


def test_progress_on_a_terminal_redraws_each_layer_line_in_place():
    out = _shown(_Terminal(), MESSAGES)
    # a new layer adds a line; an update of the first of two layers goes 2 up, redraws, 2 down
    assert out.startswith("latest: Pulling from library/x\n\n\x1b[1A\x1b[2K\raaa: Pulling fs layer \r\x1b[1B"
                          "\n\x1b[1A\x1b[2K\rbbb: Pulling fs layer \r\x1b[1B")
    assert "\x1b[2A\x1b[2K\raaa: Downloading       5B/10B\r\x1b[2B" in out
    assert out.endswith("Digest: sha256:" + "0" * 64 + "\n")


def test_progress_messages_are_dockers_json_shape():
    assert message("aaa", "Downloading", 5, 10) == {
        "status": "Downloading", "progressDetail": {"current": 5, "total": 10},
        "progress": "[=========================>                         ]       5B/10B", "id": "aaa"}
    assert message("aaa", "Pull complete") == {"status": "Pull complete", "progressDetail": {}, "id": "aaa"}
    assert message(None, "Status: Image is up to date for x") == {"status": "Status: Image is up to date for x"}
