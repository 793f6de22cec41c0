"""berth.image.dockerignore against docker's own cases: moby/patternmatcher's patternmatcher_test.go
(TestMatches, TestMatch from Go's filepath tests, TestCompile, the New() errors) and
ignorefile_test.go (TestReadAll), plus the context walk the docker CLI does with them."""

import os

import pytest

from berth.errors import InvalidArgument
from berth.image import dockerignore
from berth.image.dockerignore import EXACT, PREFIX, REGEXP, SUFFIX, Matcher, go_dir, read_patterns

# patternmatcher_test.go TestMatches: (pattern, text, pass)
MATCHES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),  # weird one
    ("**/", "file/", True),
    ("**", "/", True),
    ("**/", "/", True),
    ("**", "dir/file", True),
    ("**/", "dir/file", True),
    ("**", "dir/file/", True),
    ("**/", "dir/file/", True),
    ("**/**", "dir/file", True),
    ("**/**", "dir/file/", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/file/", True),
    ("dir/**", "dir/dir2/file", True),
    ("dir/**", "dir/dir2/file/", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**/dir2/**", "dir/dir2/dir3/file/", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/file", True),
    ("**file", "dir/dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/file*.txt", "dir/dir/file.txt", True),
    ("**/file*.txt*", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("**/**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/file.txt", True),
    ("a**/*.txt", "a/dir/file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[b-d]e", "aae", False),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc.def", "abcZdef", False),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("a\\\\", "a\\", True),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def", True),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\*b", "a*b", True),
]

MULTI = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl"],
     "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    # the single-test functions of patternmatcher_test.go
    (["*"], "fileutils.go", True),
    (["*.go"], "fileutils.go", True),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["*.go"], ".", False),
    ([], "/any/path/there", False),
    # docker's documentation of .dockerignore
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),
    (["*/temp*"], "somedir/temporary.txt", True),
    (["*/temp*"], "somedir/temp", True),
    (["*/temp*"], "temp", False),
    (["*/*/temp*"], "somedir/subdir/temporary.txt", True),
    (["temp?"], "tempa", True),
    (["temp?"], "dir/tempa", False),
    (["**/*.go"], "a/b/c.go", True),
]

ALL = [([pattern], text, expected) for pattern, text, expected in MATCHES] + MULTI


def _walked(matcher: Matcher, text: str) -> bool:
    """The answer for `text` as a top-down walk gets it: each parent first, passing its info on
    (patternmatcher_test.go's MatchesUsingParentResults check)."""
    parent = go_dir(text)
    info = None
    if parent != ".":
        parts = parent.split("/")
        for i in range(1, len(parts) + 1):
            _, info = matcher.excluded_below("/".join(parts[:i]), info)
    return matcher.excluded_below(text, info)[0]


@pytest.mark.parametrize(("patterns", "text", "expected"), ALL)
def test_matches_or_parent_matches(patterns, text, expected):
    assert Matcher(patterns).excluded(text) is expected


@pytest.mark.parametrize(("patterns", "text", "expected"), [case for case in ALL if case[1] != "."])
def test_matches_using_parent_results(patterns, text, expected):
    assert _walked(Matcher(patterns), text) is expected


@pytest.mark.parametrize(("patterns", "text", "expected"), [case for case in ALL if case[1] != "."])
def test_matches_using_parent_results_no_context(patterns, text, expected):
    assert Matcher(patterns).excluded_below(text, None)[0] is expected


# Go's filepath.Match cases, as patternmatcher_test.go's TestMatch runs them: (pattern, text, match)
GO_MATCH = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", True),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("*x", "xxx", True),
]

GO_BAD_PATTERNS = ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "**/["]


@pytest.mark.parametrize(("pattern", "text", "expected"), GO_MATCH)
def test_go_filepath_match_cases(pattern, text, expected):
    assert Matcher([pattern]).excluded(text) is expected


@pytest.mark.parametrize("pattern", GO_BAD_PATTERNS)
def test_bad_pattern_is_docker_error(pattern):
    with pytest.raises(InvalidArgument, match="^syntax error in pattern$"):
        Matcher([pattern])


def test_single_exclamation_is_an_error():
    with pytest.raises(InvalidArgument, match=r'^illegal exclusion pattern: "!"$'):
        Matcher(["!"])
    with pytest.raises(InvalidArgument, match="illegal exclusion pattern"):
        Matcher(read_patterns("a\n! \n"))


def test_regexp_that_go_refuses_is_an_error():
    # filepath.Match accepts it (a range l-O matches nothing) but Go's regexp refuses it
    # (moby/moby#52203): patternmatcher answers ErrBadPattern
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        Matcher(["[Local-Only]/"])


# patternmatcher_test.go TestCompile: (pattern, match type, Go regexp)
COMPILE = [
    ("*", REGEXP, "^[^/]*$"),
    ("file*", REGEXP, "^file[^/]*$"),
    ("*file", REGEXP, "^[^/]*file$"),
    ("a*/b", REGEXP, "^a[^/]*/b$"),
    ("**", SUFFIX, ""),
    ("**/**", REGEXP, "^(.*/)?.*$"),
    ("dir/**", PREFIX, ""),
    ("**/dir", SUFFIX, ""),
    ("**/dir2/*", REGEXP, "^(.*/)?dir2/[^/]*$"),
    ("**/dir2/**", REGEXP, "^(.*/)?dir2/.*$"),
    ("**file", SUFFIX, ""),
    ("**/file*txt", REGEXP, "^(.*/)?file[^/]*txt$"),
    ("**/**/*.txt", REGEXP, "^(.*/)?(.*/)?[^/]*\\.txt$"),
    ("a[b-d]e", REGEXP, "^a[b-d]e$"),
    (".*", REGEXP, "^\\.[^/]*$"),
    ("abc.def", EXACT, ""),
    ("abc?def", REGEXP, "^abc[^/]def$"),
    ("**/foo/bar", SUFFIX, ""),
    ("a(b)c/def", EXACT, ""),
    ("a.|)$(}+{bc", EXACT, ""),
    ("dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", EXACT, ""),
]


@pytest.mark.parametrize(("pattern", "match_type", "regexp"), COMPILE)
def test_compile(pattern, match_type, regexp):
    compiled = Matcher([pattern]).patterns[0]
    assert compiled.match_type == match_type
    if match_type == REGEXP:
        assert compiled.regexp_source == regexp


def test_go_dollar_is_end_of_text():
    # Go's `$` never matches before a trailing newline, as Python's does
    assert not Matcher(["a?"]).excluded("ab\n")
    assert Matcher(["a*"]).excluded("ab\n")  # but a class matches a newline in both


def test_clean_patterns():
    matcher = Matcher(["docs", "config", ""])
    assert [p.cleaned for p in matcher.patterns] == ["docs", "config"]
    assert not matcher.exclusions
    for patterns in (["docs", "!docs/README.md"], ["docs", "  !docs/README.md"], ["docs", "!docs/README.md  "]):
        assert Matcher(patterns).exclusions


def test_read_all():
    content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! "
    assert read_patterns(content) == ["test1", "test2", "a/file/here", "lastfile", "!inverted/abs/path", "!", "!"]
    assert read_patterns("") == []


def test_read_all_bom_crlf_and_cleaning():
    text = "\ufeff# comment\r\n  ./a/../b/  \r\n #not a comment\n//c//d\n/\n!./e/./f\n"
    assert read_patterns(text) == ["b", "#not a comment", "c/d", "/", "!e/f"]


def _tree(root, files):
    for rel in files:
        path = os.path.join(root, rel)
        if rel.endswith("/"):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(rel)


def test_walk_skips_excluded_directories(tmp_path):
    _tree(tmp_path, ["Dockerfile", "app/main.py", "app/cache/x.pyc", "node_modules/a/index.js",
                     "docs/README.md", "docs/guide.md", "empty/", ".git/HEAD"])
    (tmp_path / "link").symlink_to("app")
    (tmp_path / ".dockerignore").write_text("node_modules\n**/cache\n.git\ndocs\n!docs/README.md\n")
    matcher = dockerignore.load(str(tmp_path))
    assert matcher.source == str(tmp_path / ".dockerignore")
    walked = [rel for rel, _ in matcher.walk(str(tmp_path))]
    # docs itself is excluded (not listed) but walked for the exception under it; the symlink
    # to a directory is listed and not followed
    assert walked == [".dockerignore", "Dockerfile", "app", "app/main.py", "docs/README.md", "empty", "link"]
    assert matcher.may_skip_dir("node_modules") and not matcher.may_skip_dir("docs")


def test_walk_docker_keeps_skipping_without_a_named_exception(tmp_path):
    # docker's CLI skips an excluded directory unless an exception pattern starts with its path:
    # `!**/keep` does not reopen `out`, `!out/keep` does
    _tree(tmp_path, ["out/keep", "out/drop"])
    assert [r for r, _ in Matcher(["out", "!**/keep"]).walk(str(tmp_path))] == []
    assert [r for r, _ in Matcher(["out", "!out/keep"]).walk(str(tmp_path))] == ["out/keep"]
    assert [r for r, _ in Matcher(["*", "!out"]).walk(str(tmp_path))] == ["out", "out/drop", "out/keep"]


def test_walk_without_ignore_file(tmp_path):
    _tree(tmp_path, ["a", "b/c"])
    matcher = dockerignore.load(str(tmp_path))
    assert not matcher and matcher.source is None
    assert [r for r, _ in matcher.walk(str(tmp_path))] == ["a", "b", "b/c"]


def test_dockerfile_specific_ignore_file_wins(tmp_path):
    _tree(tmp_path, ["build/app.Dockerfile", "a.txt", "b.txt"])
    (tmp_path / ".dockerignore").write_text("a.txt\n")
    (tmp_path / "build" / "app.Dockerfile.dockerignore").write_text("b.txt\n")
    matcher = dockerignore.load(str(tmp_path), "build/app.Dockerfile")
    assert matcher.excluded("b.txt") and not matcher.excluded("a.txt")
    # an absolute -f path, and a Dockerfile without its own ignore file
    assert dockerignore.load(str(tmp_path), str(tmp_path / "build/app.Dockerfile")).excluded("b.txt")
    assert dockerignore.load(str(tmp_path), "Dockerfile").excluded("a.txt")


def test_bad_ignore_file_is_refused(tmp_path):
    (tmp_path / ".dockerignore").write_text("ok\n[\n")
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        dockerignore.load(str(tmp_path))


def test_dockerfile_and_ignore_file_are_always_sent():
    patterns = ["*", "!src"]
    sent = Matcher(dockerignore.sent_patterns(patterns, "build/Dockerfile.prod"))
    assert not sent.excluded(".dockerignore") and not sent.excluded("build/Dockerfile.prod")
    assert sent.excluded("other")
    # what the build copies still leaves them out
    assert Matcher(patterns).excluded(".dockerignore")
    assert dockerignore.sent_patterns(["a"]) == ["a"]
