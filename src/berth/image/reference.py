"""Docker image references: parse, normalize and display them the way the
docker CLI does (github.com/distribution/reference, ParseNormalizedNamed).

Hand-written instead of regular expressions because `berth run` parses a
reference on every start and importing `re` costs more than the parse.
"""

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_LOWER_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_ALNUM = _LOWER_ALNUM | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_WORD = _ALNUM | {"_"}
_TAG_CHARS = _WORD | {".", "-"}
_DIGITS = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")
_LOWER_HEX = frozenset("0123456789abcdef")
_DIGEST_SIZES = {"sha256": 64, "sha384": 96, "sha512": 128}

_INVALID_FORMAT = "invalid reference format"


class Reference:
    """A normalized named reference: domain and path always set, and a tag,
    a digest, or both."""

    __slots__ = ("digest", "domain", "path", "tag")

    def __init__(self, domain: str, path: str, tag: str = "", digest: str = "") -> None:
        self.domain = domain
        self.path = path
        self.tag = tag
        self.digest = digest

    def name(self) -> str:
        """Full repository name, e.g. "docker.io/library/busybox"."""
        return self.domain + "/" + self.path if self.domain else self.path

    def familiar_name(self) -> str:
        """Docker's short form: "busybox", "ns/name", "registry:5000/ns/name"."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name()
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX):
            rest = path[len(OFFICIAL_REPO_PREFIX):]
            if "/" not in rest:
                return rest
        return path

    def _suffix(self) -> str:
        out = ""
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.name() + self._suffix()

    def familiar(self) -> str:
        """Short display form: "busybox:latest", "busybox@sha256:..."."""
        return self.familiar_name() + self._suffix()

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reference):
            return NotImplemented
        return (self.domain, self.path, self.tag, self.digest) == (
            other.domain, other.path, other.tag, other.digest)

    def __hash__(self) -> int:
        return hash((self.domain, self.path, self.tag, self.digest))


def parse(ref: str) -> Reference:
    """Parse a user-supplied reference and normalize it like docker:
    "busybox" -> docker.io/library/busybox:latest. Raises ValueError with
    docker's message when the reference is malformed."""
    if len(ref) == 64 and _is_hex(ref, _LOWER_HEX):
        raise ValueError(
            f"invalid repository name ({ref}), cannot specify 64-byte hexadecimal strings")
    domain, remainder = _split_docker_domain(ref)
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise ValueError(f"invalid reference format: repository name ({remote}) must be lowercase")

    rest, at, digest = remainder.partition("@")
    if at and not digest:
        raise ValueError(_INVALID_FORMAT)
    path, sep, tag = rest.partition(":")
    if sep and not _valid_tag(tag):
        raise ValueError(_INVALID_FORMAT)
    if digest and not _valid_digest_syntax(digest):
        raise ValueError(_INVALID_FORMAT)
    # The reference grammar would read an invalid domain such as "a_b.c" as
    # a path component and leave the domain empty; such a name can never be
    # pulled, so refuse it here.
    if not _valid_domain(domain) or not _valid_path(path):
        raise ValueError(_INVALID_FORMAT)
    if len(path) > NAME_TOTAL_LENGTH_MAX:
        raise ValueError(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")
    if digest:
        _validate_digest(digest)
    if not tag and not digest:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def is_id_like(s: str) -> bool:
    """True for "sha256:<hex>" or bare lowercase hex of 1..64 characters,
    i.e. something that may be an image or container ID (prefix)."""
    s = s.removeprefix("sha256:")
    return 0 < len(s) <= 64 and _is_hex(s, _LOWER_HEX)


def _split_docker_domain(name: str) -> tuple[str, str]:
    """Docker's rule: the first component is a registry when it has '.' or
    ':', is "localhost", or has upper case; otherwise it is Docker Hub."""
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif (maybe_domain == "localhost" or "." in maybe_domain or ":" in maybe_domain
          or maybe_domain.lower() != maybe_domain):
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def _is_hex(s: str, alphabet: frozenset[str]) -> bool:
    return all(c in alphabet for c in s)


def _valid_path(path: str) -> bool:
    return bool(path) and all(_valid_path_component(c) for c in path.split("/"))


def _valid_path_component(comp: str) -> bool:
    # [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
    if not comp or comp[0] not in _LOWER_ALNUM or comp[-1] not in _LOWER_ALNUM:
        return False
    i, n = 0, len(comp)
    while i < n:
        if comp[i] in _LOWER_ALNUM:
            i += 1
            continue
        j = i
        while j < n and comp[j] not in _LOWER_ALNUM:
            j += 1
        sep = comp[i:j]
        if sep not in (".", "_", "__") and sep.strip("-"):
            return False
        i = j
    return True


def _valid_domain(domain: str) -> bool:
    host, port = domain, ""
    if domain.startswith("["):
        end = domain.find("]")
        if end < 2 or not all(c in _HEX or c == ":" for c in domain[1:end]):
            return False
        host, rest = "", domain[end + 1:]
        if rest:
            if rest[0] != ":":
                return False
            port = rest[1:]
            if not port:
                return False
    else:
        host, colon, port = domain.partition(":")
        if colon and not port:
            return False
        if not all(_valid_domain_component(c) for c in host.split(".")):
            return False
    return not port or all(c in _DIGITS for c in port)


def _valid_domain_component(comp: str) -> bool:
    # [a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    if not comp or comp[0] not in _ALNUM or comp[-1] not in _ALNUM:
        return False
    return all(c in _ALNUM or c == "-" for c in comp)


def _valid_tag(tag: str) -> bool:
    # [\w][\w.-]{0,127}
    return (0 < len(tag) <= 128 and tag[0] in _WORD
            and all(c in _TAG_CHARS for c in tag))


def _valid_digest_syntax(digest: str) -> bool:
    # [A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}
    algorithm, sep, encoded = digest.partition(":")
    if not sep or len(encoded) < 32 or not _is_hex(encoded, _HEX):
        return False
    word = ""
    for c in algorithm + "+":
        if c in "-_+.":
            if not word or word[0] not in _ALNUM or word[0] in _DIGITS:
                return False
            word = ""
        elif c in _ALNUM:
            word += c
        else:
            return False
    return True


def _validate_digest(digest: str) -> None:
    # go-digest's Parse: a known algorithm, its exact length, lowercase hex.
    algorithm, _, encoded = digest.partition(":")
    size = _DIGEST_SIZES.get(algorithm)
    if size is None:
        if algorithm.lower() != algorithm:
            raise ValueError("invalid checksum digest format")
        raise ValueError("unsupported digest algorithm")
    if len(encoded) != size:
        raise ValueError("invalid checksum digest length")
    if not _is_hex(encoded, _LOWER_HEX):
        raise ValueError("invalid checksum digest format")
