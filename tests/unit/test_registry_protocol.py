"""The registry client's pure parts: docker's name normalization as pull uses it, the
WWW-Authenticate challenge parser, and which registries are insecure by default."""

from berth.image import reference, registry


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
    assert registry.auth_key("docker.io") == "https://index.docker.io/v1/"
    assert registry.auth_key("localhost:5000") == "localhost:5000"


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
