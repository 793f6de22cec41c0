""".dockerignore: which files of a build context a build sees, by docker's rules (the
moby/patternmatcher and patternmatcher/ignorefile packages the docker CLI and dockerd use).

Patterns are read as ignorefile.ReadAll reads them (comments, whitespace, filepath.Clean, a
leading `/` dropped, `!` exceptions) and matched as PatternMatcher does (`*`, `?`, `[...]`,
`\\` escapes, `**` across directories, a pattern matching a parent excludes what is below it,
the last matching pattern wins)."""

import os
import posixpath
import re
from collections.abc import Iterator

from berth.errors import InvalidArgument

IGNORE_FILE = ".dockerignore"

# What each pattern compiles to (patternmatcher's matchType): a plain path is compared, `dir/**`
# is a prefix, `**/name` a suffix; anything else is a regular expression.
EXACT, PREFIX, SUFFIX, REGEXP = "exact", "prefix", "suffix", "regexp"

# Characters patternmatcher escapes because they mean something to a regexp, not to a glob.
_REGEXP_SPECIALS = frozenset(".+()|{}$")


def go_clean(path: str) -> str:
    """Go's filepath.Clean on Unix: posixpath.normpath, except that a leading `//` is one `/`."""
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def go_dir(path: str) -> str:
    """Go's filepath.Dir: everything before the last `/`, cleaned ("." when there is none)."""
    return go_clean(path[:path.rfind("/") + 1])


def read_patterns(text: str) -> list[str]:
    """The patterns of an ignore file, as ignorefile.ReadAll returns them: a UTF-8 BOM dropped,
    lines starting with `#` skipped, whitespace trimmed, blank lines skipped, each pattern
    cleaned with its leading `/` dropped (`/a/b` is `a/b`), `!` kept in front."""
    patterns = []
    for number, line in enumerate(text.split("\n")):
        if line.endswith("\r"):
            line = line[:-1]
        if number == 0 and line.startswith("\ufeff"):
            line = line[1:]
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern[0] == "!"
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = go_clean(pattern)
            if len(pattern) > 1 and pattern[0] == "/":
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


def _bad_pattern() -> InvalidArgument:
    return InvalidArgument("syntax error in pattern")  # Go's filepath.ErrBadPattern


def _check_class(pattern: str, i: int) -> int:
    """Validate the character class opening at pattern[i] as Go's filepath.Match does (at least one
    range, `lo` or `lo-hi`, each end a character or a `\\` escape, never a bare `-` or `]`); return
    the index after its closing `]`."""
    i += 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    ranges = 0
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            return i + 1
        i = _check_class_char(pattern, i)
        if pattern[i] == "-":
            i = _check_class_char(pattern, i + 1)
        ranges += 1


def _check_class_char(pattern: str, i: int) -> int:
    """One end of a range (Go's getEsc): the index after it, which must still be in the pattern."""
    if i >= len(pattern) or pattern[i] in "-]":
        raise _bad_pattern()
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise _bad_pattern()
    i += 1
    if i >= len(pattern):
        raise _bad_pattern()
    return i


def check_syntax(pattern: str) -> None:
    """Raise Go's ErrBadPattern where filepath.Match would: patternmatcher.New checks each pattern
    so (an unclosed or empty `[...]`, a range with a bare `-` or `]`, a trailing `\\`)."""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "[":
            i = _check_class(pattern, i)
        elif char == "\\":
            if i + 1 >= len(pattern):
                raise _bad_pattern()
            i += 2
        else:
            i += 1


class Pattern:
    """One pattern of an ignore file, compiled as patternmatcher's Pattern.compile does."""

    __slots__ = ("cleaned", "exclusion", "match_type", "regexp_source", "_regexp")

    def __init__(self, cleaned: str, exclusion: bool):
        self.cleaned = cleaned
        self.exclusion = exclusion
        self.match_type, self.regexp_source = _compile(cleaned)
        self._regexp = None
        if self.match_type == REGEXP:
            # Go's `$` is the end of the text; Python's would also match before a final newline.
            source = self.regexp_source[:-1] + r"\Z"
            try:
                import warnings
                with warnings.catch_warnings():  # `[[` is a literal `[` for Go; Python warns
                    warnings.simplefilter("ignore")
                    self._regexp = re.compile(source)
            except re.error:
                raise _bad_pattern() from None

    def __repr__(self) -> str:
        return ("!" if self.exclusion else "") + self.cleaned

    def matches(self, path: str) -> bool:
        if self.match_type == EXACT:
            return path == self.cleaned
        if self.match_type == PREFIX:
            return path.startswith(self.cleaned[:-2])
        if self.match_type == SUFFIX:
            suffix = self.cleaned[2:]
            # `**/foo` also matches "foo" itself
            return path.endswith(suffix) or (suffix[:1] == "/" and path == suffix[1:])
        return self._regexp.match(path) is not None


def _compile(pattern: str) -> tuple[str, str]:
    """patternmatcher's Pattern.compile: the match type of a pattern and, for REGEXP, the Go
    regular expression it becomes (kept in Go's spelling so it can be compared with docker's)."""
    regexp = "^"
    kind = EXACT
    i, n = 0, len(pattern)
    while i < n:
        start = i
        char = pattern[i]
        i += 1
        if char == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":  # `**/` is `**`
                    i += 1
                if i == n:  # a trailing `**` matches everything below, as in .gitignore
                    if kind == EXACT:
                        kind = PREFIX
                    else:
                        regexp += ".*"
                        kind = REGEXP
                else:
                    regexp += "(.*/)?"
                    kind = REGEXP
                if start == 0:
                    kind = SUFFIX
            else:
                regexp += "[^/]*"
                kind = REGEXP
        elif char == "?":
            regexp += "[^/]"
            kind = REGEXP
        elif char in _REGEXP_SPECIALS:
            regexp += "\\" + char
        elif char == "\\":
            if i < n:
                regexp += "\\" + pattern[i]
                i += 1
                kind = REGEXP
            else:
                regexp += "\\"
        elif char in "[]":
            regexp += char
            kind = REGEXP
        else:
            regexp += char
    if kind == REGEXP:
        regexp += "$"
    return kind, regexp


class Matcher:
    """The patterns of one ignore file; `excluded(relpath)` says whether a build leaves a path of
    its context out, `walk` lists what it keeps."""

    __slots__ = ("patterns", "exclusions", "source")

    def __init__(self, patterns: list[str], source: str | None = None):
        self.source = source  # the ignore file read, if any
        self.patterns: list[Pattern] = []
        self.exclusions = False  # any `!` pattern
        for text in patterns:
            text = text.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text[0] == "!"
            if exclusion:
                if len(text) == 1:
                    raise InvalidArgument('illegal exclusion pattern: "!"')
                text = text[1:]
                self.exclusions = True
            check_syntax(text)
            self.patterns.append(Pattern(text, exclusion))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, relpath: str) -> bool:
        """Whether the path (relative to the context, `/`-separated) is left out: the last pattern
        that matches it or one of its parent directories decides (MatchesOrParentMatches). The
        context itself is never excluded."""
        path = go_clean(relpath)
        if path == "." or not self.patterns:
            return False
        return self.excluded_below(path, None)[0]

    def excluded_below(self, relpath: str, parent_matched: list[bool] | None) -> tuple[bool, list[bool]]:
        """excluded() for a walk from the top (MatchesUsingParentResults): `parent_matched` is what
        this returned for the parent directory (None: unknown, the parents are matched as
        excluded() does); returns the answer and what to pass for the entries of relpath."""
        matched = False
        parent = go_dir(relpath) if parent_matched is None else "."
        parents = parent.split("/") if parent != "." else []
        info = [False] * len(self.patterns)
        for index, pattern in enumerate(self.patterns):
            match = parent_matched[index] if parent_matched is not None else False
            if not match:
                if pattern.exclusion != matched:
                    continue
                match = pattern.matches(relpath)
                if not match and parents:
                    match = any(pattern.matches("/".join(parents[:i])) for i in range(1, len(parents) + 1))
            info[index] = match
            if match:
                matched = not pattern.exclusion
        return matched, info

    def may_skip_dir(self, relpath: str) -> bool:
        """Whether an excluded directory can be left out whole, as the docker CLI's context walk
        decides: unless an exception pattern names a path in it (`!dir/keep` keeps `dir`'s walk
        going; `!**/keep` does not)."""
        if not self.exclusions:
            return True
        prefix = go_clean(relpath) + "/"
        return not any(p.exclusion and (p.cleaned + "/").startswith(prefix) for p in self.patterns)

    def walk(self, context_dir: str) -> Iterator[tuple[str, os.DirEntry]]:
        """The entries of the context a build keeps, top-down, as (relpath, entry), without
        following symlinks. An excluded directory is never listed; its walk goes on only where an
        exception could keep something below it (may_skip_dir), as the docker CLI's does."""
        # depth first in lexical order, as Go's filepath.Walk; a stack, not recursion, so that no
        # depth of nesting can exhaust Python's stack
        stack = [self._entries(context_dir, "", None)]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                continue
            relpath, entry, info, listed = step
            if listed:
                yield relpath, entry
            if info is not None:
                stack.append(self._entries(entry.path, relpath + "/", info))

    def _entries(self, path: str, rel: str, parent_info: list[bool] | None):
        """(relpath, entry, info to walk it with or None, whether it is kept) for each entry of a
        directory of the context."""
        with os.scandir(path) as scan:
            entries = sorted(scan, key=lambda e: e.name)
        for entry in entries:
            relpath = rel + entry.name
            skip, info = self.excluded_below(relpath, parent_info) if self.patterns else (False, [])
            descend = entry.is_dir(follow_symlinks=False) and (not skip or not self.may_skip_dir(relpath))
            yield relpath, entry, info if descend else None, not skip


def ignore_file(context_dir: str, dockerfile: str | None = None) -> str | None:
    """The ignore file that applies: `<Dockerfile>.dockerignore` beside the Dockerfile (BuildKit's
    rule, ahead of the context's), else the context's `.dockerignore`; None when neither exists."""
    candidates = []
    if dockerfile:
        candidates.append(os.path.join(context_dir, dockerfile) + IGNORE_FILE)
    candidates.append(os.path.join(context_dir, IGNORE_FILE))
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    return None


def load(context_dir: str, dockerfile: str | None = None) -> Matcher:
    """The matcher of a build context (a directory): its ignore file's patterns, none without one.
    `dockerfile` is the -f path (absolute, or relative to the context). Patterns may exclude the
    Dockerfile and the ignore file: the build still reads them, COPY and ADD leave them out."""
    path = ignore_file(context_dir, dockerfile)
    if path is None:
        return Matcher([])
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "surrogateescape")
    except OSError as err:
        raise InvalidArgument(f"error reading {IGNORE_FILE}: {err.strerror}") from None
    return Matcher(read_patterns(text), source=path)


def sent_patterns(patterns: list[str], dockerfile: str = "Dockerfile") -> list[str]:
    """The patterns a classic-builder client applies to the context it sends (the docker CLI's
    TrimBuildFilesFromExcludes): the Dockerfile and .dockerignore are always sent, since the
    daemon needs them; it leaves them out of COPY itself."""
    matcher = Matcher(patterns)
    patterns = list(patterns)
    if matcher.excluded(IGNORE_FILE):
        patterns.append("!" + IGNORE_FILE)
    if matcher.excluded(dockerfile):
        patterns.append("!" + dockerfile)
    return patterns
