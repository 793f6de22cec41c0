"""`berth build` (`image build`) and `builder prune`: docker's flags into BuildOptions, the
classic builder's progress on stdout."""

import os
import sys

from berth.cli.flags import BOOL, LIST, STRING, Command, Flag, help_text, parse, usage_error
from berth.errors import InvalidArgument

BUILD = Command("build", "berth build [OPTIONS] PATH", "Build an image from a Dockerfile",
                [Flag("build-arg", None, LIST, (), "Set build-time variables"),
                 Flag("cache-from", None, LIST, (), "Images to consider as cache sources"),
                 Flag("file", "f", STRING, None, "Name of the Dockerfile (Default is 'PATH/Dockerfile')"),
                 Flag("iidfile", None, STRING, None, "Write the image ID to the file"),
                 Flag("label", None, LIST, (), "Set metadata for an image"),
                 Flag("network", None, STRING, "default",
                      "Set the networking mode for the RUN instructions during build"),
                 Flag("no-cache", None, BOOL, False, "Do not use cache when building the image"),
                 Flag("platform", None, STRING, None, "Set platform if server is multi-platform capable"),
                 Flag("progress", None, STRING, "auto",
                      "Set type of progress output (auto, plain, tty). Use plain to show container output"),
                 Flag("pull", None, BOOL, False, "Always attempt to pull a newer version of the image"),
                 Flag("quiet", "q", BOOL, False, "Suppress the build output and print image ID on success"),
                 Flag("rm", None, BOOL, True, "Remove intermediate containers after a successful build"),
                 Flag("force-rm", None, BOOL, False, "Always remove intermediate containers"),
                 Flag("tag", "t", LIST, (), "Name and optionally a tag in the 'name:tag' format"),
                 Flag("target", None, STRING, None, "Set the target build stage to build.")],
                min_args=1, max_args=1)
BUILDER_PRUNE = Command("builder prune", "berth builder prune", "Remove build cache",
                        [Flag("all", "a", BOOL, False, "Remove all unused build cache, not just dangling ones"),
                         Flag("filter", None, LIST, (), "Provide filter values (e.g. \"until=24h\")"),
                         Flag("force", "f", BOOL, False, "Do not prompt for confirmation")], max_args=0)


def cmd_build(engine, argv: list[str]) -> int:
    from berth.engine.build import BuildOptions, RunFailed, build  # lazy: only build

    opts, args = parse(BUILD, argv)
    if opts.help:
        sys.stdout.write(help_text(BUILD))
        return 0
    if opts.progress not in ("auto", "plain", "tty", "quiet", "rawjson"):
        raise InvalidArgument(f'invalid progress mode "{opts.progress}": use auto, plain or tty')
    from berth.engine.images import tag_name  # lazy: reference parsing

    for tag in opts.tag:  # docker's CLI checks them as flag values: exit 125
        try:
            tag_name(tag)
        except InvalidArgument as err:
            raise usage_error(BUILD, f'invalid argument "{tag}" for "-t, --tag" flag: {err}') from None
    context = args[0]
    dockerfile = opts.file or "Dockerfile"
    stdin_file = None
    if opts.file == "-":  # docker's -f -: the Dockerfile on stdin, the context a directory still
        stdin_file = _dockerfile_from_stdin()
        dockerfile = stdin_file
    elif opts.file and not os.path.isabs(opts.file):
        # docker's CLI: -f is relative to the current directory, then made relative to the context
        dockerfile = os.path.abspath(opts.file)
    labels = {}
    if opts.label:
        from berth.cli.run import parse_labels  # docker's "k=v" / "k" labels, as run reads them (lazy: 10 ms)

        labels = parse_labels(opts.label, ())
    options = BuildOptions(context, dockerfile, tags=opts.tag, build_args=_build_args(opts.build_arg),
                           labels=labels, target=opts.target, no_cache=opts.no_cache,
                           pull=opts.pull, network=opts.network, quiet=opts.quiet or opts.progress == "quiet",
                           platform=opts.platform, cache_from=opts.cache_from)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    import _signal  # the builtin: `signal` imports enum (~10 ms on a cached build)

    def stop(_signum, _frame):  # as ctrl-c: the step's container is removed on the way out
        raise KeyboardInterrupt

    for signum in (_signal.SIGTERM, _signal.SIGHUP):
        _signal.signal(signum, stop)
    try:
        image_id = build(engine, options, out)
    except RunFailed as err:  # docker's CLI: the message alone, and the command's exit code
        sys.stdout.flush()
        print(str(err), file=sys.stderr)
        return err.code or 1
    finally:
        if stdin_file is not None:
            os.unlink(stdin_file)
    if opts.iidfile:
        from berth.fs import OutputFile  # lazy: only --iidfile

        with OutputFile(opts.iidfile) as fd:
            os.write(fd, image_id.encode())
    if options.quiet:
        print(image_id)
    return 0


def _dockerfile_from_stdin() -> str:
    """Our stdin, in a private file of its own (O_EXCL, 0600) the build reads as the Dockerfile."""
    import tempfile  # lazy: only -f -

    fd, path = tempfile.mkstemp(prefix="berth-build-", suffix=".Dockerfile")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(sys.stdin.buffer.read())
    except BaseException:
        os.unlink(path)
        raise
    return path


def _build_args(values: list[str]) -> dict:
    """--build-arg K=V; K alone takes K from our environment, as docker's CLI (unset: no value)."""
    args = {}
    for value in values:
        key, has_value, text = value.partition("=")
        args[key] = text if has_value else os.environ.get(key)
    return args


def cmd_builder_prune(engine, argv: list[str]) -> int:
    from berth.engine.build_cache import prune  # lazy: only builder prune
    from berth.units import human_size

    opts, _ = parse(BUILDER_PRUNE, argv)
    if opts.help:
        sys.stdout.write(help_text(BUILDER_PRUNE))
        return 0
    if opts.filter:
        raise InvalidArgument("builder prune --filter is not supported by berth yet")
    if not opts.force:
        warning = ("WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] " if opts.all
                   else "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] ")
        sys.stdout.write(warning)
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    reclaimed = prune(engine, opts.all)
    sys.stdout.write(f"Total reclaimed space: {human_size(reclaimed)}\n")
    return 0
