""".dockerignore matching for build contexts. A stand-in that excludes nothing: the slice
`build-api` replaces it with docker's pattern rules (same names)."""


class Matcher:
    __slots__ = ()

    def excluded(self, relpath: str) -> bool:
        return False


def load(context_dir: str, dockerfile: str | None = None) -> Matcher:
    return Matcher()
