"""Image references parse and display like docker's (distribution/reference)."""

import pytest

from berth.image.reference import Reference, is_id_like, parse

HEX = "b3255e7dfbcd10cb367af0d409747d511aeb66dfac98cf30e97e87e4207dd76f"


@pytest.mark.parametrize(
    ("text", "full", "familiar", "familiar_name"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("busybox:latest", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36",
         "busybox"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest", "busybox"),
        ("index.docker.io/ns/name", "docker.io/ns/name:latest", "ns/name:latest", "ns/name"),
        ("ns/name", "docker.io/ns/name:latest", "ns/name:latest", "ns/name"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest",
         "library/a/b"),
        ("registry:5000/ns/name:tag", "registry:5000/ns/name:tag",
         "registry:5000/ns/name:tag", "registry:5000/ns/name"),
        ("localhost/foo", "localhost/foo:latest", "localhost/foo:latest", "localhost/foo"),
        ("localhost:5000/foo", "localhost:5000/foo:latest", "localhost:5000/foo:latest",
         "localhost:5000/foo"),
        ("quay.io/a-b/c__d.e:v1.0_rc-1", "quay.io/a-b/c__d.e:v1.0_rc-1",
         "quay.io/a-b/c__d.e:v1.0_rc-1", "quay.io/a-b/c__d.e"),
        ("[::1]:5000/foo:1", "[::1]:5000/foo:1", "[::1]:5000/foo:1", "[::1]:5000/foo"),
        ("busybox:UPPER_tag", "docker.io/library/busybox:UPPER_tag", "busybox:UPPER_tag",
         "busybox"),
    ],
)
def test_normalizes_like_docker(text, full, familiar, familiar_name):
    ref = parse(text)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert ref.familiar_name() == familiar_name


def test_fields():
    ref = parse("registry:5000/ns/name:tag")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("registry:5000", "ns/name", "tag", "")
    assert ref.name() == "registry:5000/ns/name"


def test_digest_only_gets_no_default_tag():
    ref = parse(f"name@sha256:{HEX}")
    assert ref.tag == ""
    assert ref.digest == f"sha256:{HEX}"
    assert str(ref) == f"docker.io/library/name@sha256:{HEX}"
    assert ref.familiar() == f"name@sha256:{HEX}"


def test_tag_and_digest_are_both_kept():
    ref = parse(f"name:tag@sha256:{HEX}")
    assert (ref.tag, ref.digest) == ("tag", f"sha256:{HEX}")
    assert ref.familiar() == f"name:tag@sha256:{HEX}"


def test_uppercase_first_component_is_a_domain():
    # docker treats a first component with capitals as a registry host.
    ref = parse("Foo/bar")
    assert (ref.domain, ref.path) == ("Foo", "bar")


def test_references_compare_by_value():
    assert parse("busybox") == parse("docker.io/library/busybox:latest")
    assert len({parse("busybox"), parse("library/busybox:latest")}) == 1
    assert parse("busybox") != parse("busybox:1")
    assert Reference("docker.io", "library/x", "latest") == parse("x")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("UPPER", "invalid reference format: repository name (library/UPPER) must be lowercase"),
        ("library/Busybox",
         "invalid reference format: repository name (library/Busybox) must be lowercase"),
        ("a:b:c", "invalid reference format"),
        (":tag", "invalid reference format"),
        ("foo:", "invalid reference format"),
        ("foo@", "invalid reference format"),
        ("foo@sha256:short", "invalid reference format"),
        ("", "invalid reference format"),
        ("foo//bar", "invalid reference format"),
        ("foo/", "invalid reference format"),
        ("-foo", "invalid reference format"),
        ("foo-", "invalid reference format"),
        ("foo..bar", "invalid reference format"),
        ("foo___bar", "invalid reference format"),
        ("foo:-tag", "invalid reference format"),
        ("foo:" + "t" * 129, "invalid reference format"),
        ("registry:/foo", "invalid reference format"),
        ("registry:port/foo", "invalid reference format"),
        ("-registry.io/foo", "invalid reference format"),
        ("a_b.io/foo", "invalid reference format"),
        (HEX, f"invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings"),
        ("foo@sha256:" + "a" * 40, "invalid checksum digest length"),
        ("foo@sha256:" + HEX.upper(), "invalid checksum digest format"),
        ("foo@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("x" * 250, "repository name must not be more than 255 characters"),
    ],
)
def test_refuses_malformed_references(text, message):
    with pytest.raises(ValueError) as exc:
        parse(text)
    assert str(exc.value) == message


def test_long_names_up_to_the_limit_are_fine():
    assert parse("ns/" + "x" * 252).path == "ns/" + "x" * 252


@pytest.mark.parametrize("text", ["sha256:" + HEX, HEX, "b3255e7d", "a", "0"])
def test_id_like(text):
    assert is_id_like(text)


@pytest.mark.parametrize("text", ["", "sha256:", "busybox", "B3255E7D", HEX + "0", "sha512:ab",
                                  "sha256:xyz", "abc:tag"])
def test_not_id_like(text):
    assert not is_id_like(text)
