""".dockerignore in `berth build`: what COPY sees of the context, BuildKit's <Dockerfile>.dockerignore
beside a -f Dockerfile, a change to an excluded file leaving the cache valid, a bad pattern refused."""

import os


def _context(tmp_path) -> str:
    ctx = tmp_path / "ctx"
    for name in ("app/main.py", "app/cache/x.pyc", "node_modules/pkg/index.js", "secret.txt", "other.txt",
                 "docs/README.md", "docs/guide.md"):
        path = ctx / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name + "\n")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx\n")
    (ctx / ".dockerignore").write_text("node_modules\n**/cache\nother.txt\ndocs\n!docs/README.md\n")
    return str(ctx)


def _listing(berth, image: str) -> list[str]:
    return berth.ok("run", "--rm", "--network", "none", image, "find", "/ctx").split()


def test_copy_sees_what_dockerignore_leaves(busybox, tmp_path):
    ctx = _context(tmp_path)
    busybox.ok("build", "--network", "none", "-t", "ignored", ctx)
    assert sorted(_listing(busybox, "ignored")) == [
        "/ctx", "/ctx/.dockerignore", "/ctx/Dockerfile", "/ctx/app", "/ctx/app/main.py", "/ctx/docs",
        "/ctx/docs/README.md", "/ctx/secret.txt"]
    # an excluded file is no part of the context: changing it keeps every step cached
    with open(os.path.join(ctx, "node_modules", "pkg", "index.js"), "a") as f:
        f.write("changed\n")
    out = busybox.ok("build", "--network", "none", "-t", "ignored", ctx)
    assert "Using cache" in out.split("Step 2/2")[1], out


def test_dockerfile_specific_ignore_file(busybox, tmp_path):
    """BuildKit's rule, which docker's docs give: build/app.Dockerfile.dockerignore, beside the -f
    Dockerfile, is used instead of the context's .dockerignore."""
    ctx = _context(tmp_path)
    os.makedirs(os.path.join(ctx, "build"))
    with open(os.path.join(ctx, "build", "app.Dockerfile"), "w") as f:
        f.write("FROM busybox\nCOPY . /ctx\n")
    with open(os.path.join(ctx, "build", "app.Dockerfile.dockerignore"), "w") as f:
        f.write("secret.txt\nbuild\n")
    busybox.ok("build", "--network", "none", "-f", os.path.join(ctx, "build", "app.Dockerfile"), "-t", "specific",
               ctx)
    listing = _listing(busybox, "specific")
    assert "/ctx/secret.txt" not in listing and "/ctx/build" not in listing, (
        "build/app.Dockerfile.dockerignore was not applied (the build must load the ignore file with the "
        f"Dockerfile's path: dockerignore.load(context, dockerfile)); COPY . saw {listing}")
    assert "/ctx/other.txt" in listing and "/ctx/node_modules/pkg/index.js" in listing


def test_bad_pattern_is_refused(busybox, tmp_path):
    ctx = _context(tmp_path)
    with open(os.path.join(ctx, ".dockerignore"), "a") as f:
        f.write("[unclosed\n")
    busybox.fails(1, "build", "--network", "none", "-t", "bad", ctx, says="syntax error in pattern")
    assert "bad" not in busybox.ok("images", "--format", "{{.Repository}}").split()
