"""`berth build`: a Dockerfile run step by step as docker's classic builder does. RUN runs in
a container from the image so far and its upper dir becomes the next layer; COPY/ADD write
into a stopped container's overlay; the rest changes only the config. Each step's image is
kept in a content-addressed cache (berth.engine.build_cache) keyed by its parent, the
instruction after substitution and, for COPY/ADD, a hash of the files copied."""

import os
import posixpath
import time

from berth.engine.build_cache import BuildCache
from berth.engine.build_context import Context, Sources, opaque
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.image import instructions as dockerfile
from berth.strconv import quote

PROXY_ARGS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
              "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EMPTY_LAYER = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"  # a tar of nothing
NETWORKS = {"default": None, "bridge": None, "none": "none", "host": "host"}
_KNOWN = {"from", "run", "copy", "add", "arg", "maintainer", "workdir"} | set(dockerfile.CONFIG_INSTRUCTIONS)
_RUN_FLAGS = ("mount", "network", "security")
_COPY_FLAGS = ("from", "chown", "chmod", "link")  # --link changes only how buildkit reuses layers
_ADD_FLAGS = ("chown", "chmod", "link")


class BuildOptions:
    """What `build` asks for, in docker's terms (the CLI's flags, the API's query)."""

    __slots__ = ("context", "dockerfile", "tags", "build_args", "labels", "target", "no_cache", "pull",
                 "network", "quiet", "platform", "cache_from")

    def __init__(self, context: str, dockerfile: str = "Dockerfile", tags=(), build_args=None, labels=None,
                 target: str | None = None, no_cache: bool = False, pull: bool = False, network: str = "default",
                 quiet: bool = False, platform: str | None = None, cache_from=()):
        self.context = context
        self.dockerfile = dockerfile or "Dockerfile"
        self.tags = list(tags or ())
        self.build_args = dict(build_args or {})  # name -> value; None: named without a value
        self.labels = dict(labels or {})
        self.target = target or None
        self.no_cache = bool(no_cache)
        self.pull = bool(pull)
        self.network = network or "default"
        self.quiet = bool(quiet)
        self.platform = platform or None
        self.cache_from = list(cache_from or ())  # accepted, ignored (classic builder: images to trust)


class RunFailed(BerthError):
    """A RUN whose command ended non-zero: docker's message, and the code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def build(engine, options: BuildOptions, out) -> str:
    """Build the image `options` describe, writing docker's classic-builder progress through
    out(text); return its ID. Dockerfile errors are InvalidArgument with the line."""
    return _Builder(engine, options, out).run()


def _short(image_id: str) -> str:
    """12 hex digits of an ID; "" for FROM scratch (docker prints " ---> " then)."""
    return image_id.partition(":")[2][:12]


def _line_error(node, message: str) -> InvalidArgument:
    return InvalidArgument(f"dockerfile parse error on line {node.line}: {message}")


class _Step:
    """One instruction, checked: `kind` says how it runs, `apply` changes a config (the
    instructions that only do that), `flags` are its --flags."""

    __slots__ = ("node", "kind", "apply", "flags")

    def __init__(self, node, kind: str, apply=None, flags=None):
        self.node = node
        self.kind = kind
        self.apply = apply
        self.flags = flags or {}


class _Stage:
    """A FROM and what follows it, and the state of its build so far."""

    __slots__ = ("name", "index", "node", "platform", "steps", "image", "state", "declared", "author")

    def __init__(self, index: int, node, name: str, platform: str = ""):
        self.index = index
        self.platform = platform  # FROM --platform, unexpanded
        self.node = node
        self.name = name
        self.steps: list[_Step] = []
        self.image = None  # berth.image.store.Image, None while FROM scratch made nothing
        self.state = None  # dockerfile.State: the config and the args visible to expansion
        self.declared: dict[str, str | None] = {}  # ARGs of this stage and their values
        self.author = ""

    @property
    def image_id(self) -> str:
        return self.image.id if self.image is not None else ""


class _Builder:
    def __init__(self, engine, options: BuildOptions, out):
        self.engine = engine
        self.options = options
        self.out = out
        self.store = engine.images
        self.cache = BuildCache(engine.paths.root)
        self.meta: dict[str, str | None] = {}  # global ARGs (before the first FROM)
        self.used_args: set[str] = set()
        self.context = None
        self.stages: list[_Stage] = []
        self.step = 0
        self.total = 0

    def say(self, text: str) -> None:
        if not self.options.quiet:
            self.out(text)

    # -- the whole build ----------------------------------------------------------
    def run(self) -> str:
        options = self.options
        if options.network not in NETWORKS:
            raise InvalidArgument(f"network mode {quote(options.network)} not supported by buildkit "
                                  "or the classic builder: use default, none or host")
        if options.platform and options.platform not in ("linux/amd64", "linux", "amd64"):
            raise InvalidArgument(f'"{options.platform}": berth builds linux/amd64 images only')
        from berth.engine.images import tag_name  # lazy: reference parsing

        tags = [tag_name(t) for t in options.tags]  # a bad -t refuses before any work
        self.context = Context(options.context, options.dockerfile)
        parsed = self._parse(self.context.read_dockerfile())
        meta_nodes = self._split(parsed)
        stages = self._targeted()
        for key in sorted(options.labels):
            node = dockerfile.Node("LABEL", [], [key, options.labels[key], "="], False,
                                   f"LABEL {key}={options.labels[key]}", 0)
            stages[-1].steps.append(_Step(node, "label-option", _literal_label(key, options.labels[key])))
        self.total = len(meta_nodes) + sum(1 + len(s.steps) for s in stages)
        for node in meta_nodes:
            self._step_header(node)
            self._meta_arg(node)
        for stage in stages:
            self._build_stage(stage)
        final = stages[-1]
        if final.image is None:
            self._materialize(final)
        self._warn_unused_args()
        self.say(f"Successfully built {_short(final.image_id)}\n")
        for name in tags:
            from berth.engine.images import familiar, tag  # lazy: as above

            named = self.store.lookup(name)
            if named is None or named.id != final.image_id:  # a rebuild that changed nothing writes nothing
                tag(self.engine, final.image_id, name)
            self.say(f"Successfully tagged {familiar(name)}\n")
        return final.image_id

    def _parse(self, text: str):
        try:
            parsed = dockerfile.parse_dockerfile(text)
        except dockerfile.LineError as err:
            raise InvalidArgument(f"dockerfile parse error on line {err.line}: {err}") from None
        except ValueError:
            raise InvalidArgument(f"the Dockerfile ({self.options.dockerfile}) cannot be empty") from None
        self.escape = parsed.escape
        return parsed

    def _split(self, parsed) -> list:
        """Global ARGs, then stages: every instruction checked now (moby's instructions.Parse),
        so an error anywhere stops the build before its first step."""
        meta = []
        for node in parsed.nodes:
            name = node.name.lower()
            if name not in _KNOWN:
                raise _line_error(node, f"unknown instruction: {node.name.upper()}")
            if name == "from":
                self.stages.append(self._stage(node))
            elif not self.stages:
                if name != "arg":
                    raise _line_error(node, "no build stage in current context")
                self._check_arg(node)
                meta.append(node)
            else:
                self.stages[-1].steps.append(self._check(node))
        if not self.stages:
            raise InvalidArgument("dockerfile parse error: no build stage in current context")
        return meta

    def _stage(self, node) -> _Stage:
        try:
            flags = dockerfile.parse_flags(node, ("platform",))
        except ValueError as err:
            raise _line_error(node, str(err)) from None
        args = node.args
        name = ""
        if len(args) == 3 and args[1].lower() == "as":
            name = args[2].lower()
            if not _valid_stage_name(name):
                raise _line_error(node, f"invalid name for build stage: {quote(args[2])}, "
                                        "name can't start with a number or contain symbols")
        elif len(args) != 1:
            raise _line_error(node, "FROM requires either one or three arguments")
        return _Stage(len(self.stages), node, name, flags.get("platform", ""))

    def _check_arg(self, node) -> None:
        if not node.args:
            raise _line_error(node, "ARG requires at least one argument")
        for word in node.args:
            if not word.partition("=")[0]:
                raise _line_error(node, "ARG names can not be blank")

    def _check(self, node) -> _Step:
        name = node.name.lower()
        try:
            if name in dockerfile.CONFIG_INSTRUCTIONS:
                return _Step(node, "workdir" if name == "workdir" else "config",
                             dockerfile.CONFIG_INSTRUCTIONS[name](node))
            if name == "arg":
                self._check_arg(node)
                return _Step(node, "arg")
            if name == "maintainer":
                if not node.args:
                    raise ValueError("MAINTAINER requires exactly one argument")
                return _Step(node, "maintainer")
            if name == "run":
                flags = _run_flags(node)
                if not node.args:
                    raise ValueError("RUN requires at least one argument")
                return _Step(node, "run", flags=flags)
            allowed = _COPY_FLAGS if name == "copy" else _ADD_FLAGS
            flags = dockerfile.parse_flags(node, allowed)
            if len(node.args) < 2:
                raise ValueError(f"{name.upper()} requires at least two arguments, but only one was provided. "
                                 "Destination could not be determined")
            if "chmod" in flags:
                _chmod(flags["chmod"])
            return _Step(node, name, flags=flags)
        except ValueError as err:
            raise _line_error(node, str(err)) from None

    def _targeted(self) -> list[_Stage]:
        target = self.options.target
        if target is None:
            return self.stages
        for stage in self.stages:
            if stage.name == target.lower():
                return self.stages[:stage.index + 1]
        raise InvalidArgument(f"failed to reach build target {target} in Dockerfile")

    def _step_header(self, node) -> None:
        self.step += 1
        self.say(f"Step {self.step}/{self.total} : {node.original}\n")

    # -- ARG --------------------------------------------------------------------
    def _arg_value(self, name: str, default: str | None) -> str | None:
        provided = self.options.build_args.get(name)
        if name in self.options.build_args:
            self.used_args.add(name)
        return provided if provided is not None else default

    def _meta_arg(self, node) -> None:
        for word in node.args:
            name, has_default, default = word.partition("=")
            env = {k: v for k, v in self.meta.items() if v is not None}
            if has_default:
                default = self._expand(node, default, env)
            self.meta[name] = self._arg_value(name, default if has_default else None)

    def _stage_arg(self, stage: _Stage, node) -> None:
        shown = []
        for word in node.args:
            name, has_default, default = word.partition("=")
            if has_default:
                default = self._expand(node, default, stage.state.env())
                shown.append(f"{name}={default}")
            else:
                shown.append(name)
            value = self._arg_value(name, default if has_default else None)
            if value is None and name in self.meta:
                value = self.meta[name]  # ARG NAME in a stage takes the global's value
            stage.declared[name] = value
            self._refresh_args(stage)
        comment = "ARG " + " ".join(shown)
        self._config_step(stage, comment)

    def _refresh_args(self, stage: _Stage) -> None:
        """The args a stage's expansion and RUN see: those declared, with values, and the
        predefined proxy args given with --build-arg."""
        visible = {k: v for k, v in stage.declared.items() if v is not None}
        for name in PROXY_ARGS:
            value = self.options.build_args.get(name)
            if value is not None and name not in visible:
                visible[name] = value
                self.used_args.add(name)
        stage.state.args = visible

    def _warn_unused_args(self) -> None:
        unused = sorted(k for k in self.options.build_args if k not in self.used_args and k not in PROXY_ARGS)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")

    def _expand(self, node, word: str, env: dict) -> str:
        try:
            return dockerfile.State({}, env, self.escape).expand(word)
        except ValueError as err:
            raise _line_error(node, str(err)) from None

    # -- a stage --------------------------------------------------------------------
    def _build_stage(self, stage: _Stage) -> None:
        self._step_header(stage.node)
        self._from(stage)
        for step in stage.steps:
            self._step_header(step.node)
            self._dispatch(stage, step)
            self.say(f" ---> {_short(stage.image_id)}\n")

    def _from(self, stage: _Stage) -> None:
        node = stage.node
        env = {k: v for k, v in self.meta.items() if v is not None}
        base = self._expand(node, node.args[0], env)
        platform = stage.platform
        if platform:
            platform = self._expand(node, platform, env)
            if platform not in ("linux/amd64", "linux"):
                raise _line_error(node, f"berth builds linux/amd64 images only, not {platform}")
        for other in self.stages[:stage.index]:
            if other.name and other.name == base.lower():
                stage.image = other.image
                if stage.image is None:
                    self._materialize(other)
                    stage.image = other.image
                break
        else:
            if base.lower() == "scratch":
                stage.image = None
            else:
                stage.image = self._base_image(base)
        config = dict(stage.image.config.get("config") or {}) if stage.image is not None else {}
        config = _copy_config(config)
        env_names = {e.partition("=")[0] for e in config.get("Env") or ()}
        if "PATH" not in env_names:
            config["Env"] = list(config.get("Env") or []) + [f"PATH={DEFAULT_PATH}"]
        stage.state = dockerfile.State(config, {}, self.escape)
        self._refresh_args(stage)
        self.say(f" ---> {_short(stage.image_id)}\n")
        triggers = list(config.get("OnBuild") or ())
        if triggers:
            self._run_triggers(stage, triggers)

    def _base_image(self, ref: str):
        image = None if self.options.pull else self.store.lookup(ref)
        if image is None:
            from berth.engine.pull import pull  # lazy: only a base image not here (or --pull)

            try:
                for _ in pull(self.engine, ref):
                    pass
            except BerthError as err:
                if self.options.pull and self.store.lookup(ref) is not None:
                    raise
                raise NotFound(f"pull access denied for {ref}, repository does not exist or may require "
                               f"'docker login': {err}") from None
            image = self.store.get(ref)
        return image

    def _run_triggers(self, stage: _Stage, triggers: list[str]) -> None:
        self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
        stage.state.config["OnBuild"] = None
        for trigger in triggers:
            try:
                node = dockerfile.parse_dockerfile(trigger).nodes[0]
            except ValueError as err:
                raise InvalidArgument(f"failed to parse ONBUILD trigger {quote(trigger)}: {err}") from None
            node.line = stage.node.line
            self._dispatch(stage, self._check(node))
            self.say(f" ---> {_short(stage.image_id)}\n")

    def _dispatch(self, stage: _Stage, step: _Step) -> None:
        kind = step.kind
        if kind == "config":
            self._config_instruction(stage, step)
        elif kind == "label-option":
            step.apply(stage.state)
            self._config_step(stage, step.node.original)
        elif kind == "arg":
            self._stage_arg(stage, step.node)
        elif kind == "maintainer":
            stage.author = " ".join(step.node.args)
            self._config_step(stage, "MAINTAINER " + stage.author)
        elif kind == "workdir":
            self._workdir(stage, step)
        elif kind == "run":
            self._run(stage, step)
        else:
            self._copy(stage, step, add=kind == "add")

    # -- config-only steps --------------------------------------------------------------
    def _config_instruction(self, stage: _Stage, step: _Step) -> None:
        node = step.node
        previous_health = stage.state.config.get("Healthcheck")
        try:
            pairs = None
            if node.name.upper() in ("ENV", "LABEL"):  # moby's message: the values expanded as applied
                pairs = [(stage.state.expand(node.args[i]), stage.state.expand(node.args[i + 1]))
                         for i in range(0, len(node.args), 3)]
            step.apply(stage.state)
        except ValueError as err:
            raise _line_error(node, str(err)) from None
        if pairs is not None:
            comment = node.name.upper() + "".join(f" {k}={v}" for k, v in pairs)
        else:
            comment = _commit_comment(node, stage.state)
        if node.name.upper() == "HEALTHCHECK" and previous_health:
            self._merge_healthcheck(stage.state.config, previous_health)
        self._config_step(stage, comment)

    def _merge_healthcheck(self, config: dict, previous: dict) -> None:
        """moby commits a step merging its config with the image's: what the new HEALTHCHECK
        leaves unset (0) comes from the previous one; and its builder says when it replaces one."""
        health = dict(config["Healthcheck"])
        old_test = previous.get("Test") or []
        if old_test and old_test[0] != "NONE":
            self.say(f"Note that overriding HEALTHCHECK CMD {_go_quote_list(old_test)} with "
                     f"{_go_quote_list(health.get('Test'))}\n")
        for key in ("Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if not health.get(key) and previous.get(key):
                health[key] = previous[key]
        config["Healthcheck"] = health

    def _config_step(self, stage: _Stage, comment: str) -> None:
        """A step that changes only the config: an image with an empty layer, as docker's."""
        created_by = " ".join(_shell(stage) + ["#(nop) ", comment])
        key = self.cache.key(stage.image_id, created_by, stage.state.config, stage.author)
        if self._cached(stage, key):
            return
        self._add_image(stage, created_by, None, None)
        self.cache.put(key, stage.image_id, stage.image.manifest_digest)

    def _cached(self, stage: _Stage, key: str) -> bool:
        if self.options.no_cache:
            return False
        cached = self.cache.get(key)
        if cached is None:
            return False
        image = self._image_by_manifest(*cached)
        if image is None:
            return False
        stage.image = image
        stage.state.config = _copy_config(image.config.get("config") or {})
        self.say(" ---> Using cache\n")
        return True

    def _image_by_manifest(self, image_id: str, manifest_digest: str):
        """The cached image, read by its manifest (a lookup by ID reads every manifest); None
        once it is gone (an rmi or prune takes the manifest blob with it)."""
        from berth import fastjson
        from berth.image.store import Image

        try:
            manifest = fastjson.loads(self.store.read_blob(manifest_digest))
            if manifest["config"]["digest"] != image_id:
                return None
            return Image(self.store, image_id, manifest_digest, fastjson.loads(self.store.read_blob(image_id)), [])
        except (OSError, ValueError, KeyError, InvalidArgument):
            return None

    # -- WORKDIR ------------------------------------------------------------------------
    def _workdir(self, stage: _Stage, step: _Step) -> None:
        try:
            step.apply(stage.state)
        except ValueError as err:
            raise _line_error(step.node, str(err)) from None
        workdir = stage.state.config["WorkingDir"]
        created_by = " ".join(_shell(stage) + ["#(nop) WORKDIR " + workdir])
        key = self.cache.key(stage.image_id, created_by, stage.state.config, stage.author)
        if self._cached(stage, key):
            return
        if self._is_dir_in_image(stage, workdir):
            self._add_image(stage, created_by, None, None)
        else:
            self._in_container(stage, created_by, lambda record: self._copy_into(
                record, workdir, Sources([]), (0, 0)))
        self.cache.put(key, stage.image_id, stage.image.manifest_digest)

    def _is_dir_in_image(self, stage: _Stage, path: str) -> bool:
        """Whether `path` is a directory in the image as it is (no symlink on the way)."""
        if stage.image is None:
            return path == "/"
        import stat

        parts = [p for p in path.split("/") if p]
        for layer in reversed(self.store.unpacked_layer_dirs(stage.image)):  # the top layer first
            probe = layer
            for i, part in enumerate(parts):
                parent, probe = probe, os.path.join(probe, part)
                try:
                    st = os.lstat(probe)
                except FileNotFoundError:
                    if opaque(parent):  # what lower layers hold below it is hidden: absent
                        return False
                    break
                if not stat.S_ISDIR(st.st_mode):  # a file, a symlink, or a whiteout (0/0 device)
                    return False
                if i == len(parts) - 1:
                    return True
        return not parts

    # -- RUN --------------------------------------------------------------------------
    def _run(self, stage: _Stage, step: _Step) -> None:
        node = step.node
        state = stage.state
        argv, script = self._run_argv(stage, node)
        env_names = {e.partition("=")[0] for e in state.config.get("Env") or ()}
        run_args = {k: v for k, v in state.args.items() if k not in env_names}
        save = list(argv)
        if run_args:
            shown = sorted(f"{k}={v}" for k, v in run_args.items()
                           if k not in PROXY_ARGS or k in stage.declared)
            save = [f"|{len(shown)}"] + shown + argv
        created_by = " ".join(save)
        if script is not None:  # what the interpreter reads is part of the step
            created_by += " <<" + script[0] + "\n" + script[1] + script[0]
        network = step.flags.get("network") or self.options.network
        mounts = [self._parse_mount(node, m) for m in step.flags.get("mount", ())]
        key = self.cache.key(stage.image_id, created_by, state.config, sorted(run_args.items()), network,
                             [m.key() for m in mounts], stage.author)
        if self._cached(stage, key):
            return
        from berth.engine.containers import CreateRequest  # lazy: the engine's own modules
        from berth.engine.mounts import MountRequest

        binds, tmpfs = [], {}
        for mount in mounts:
            if mount.kind == "tmpfs":
                tmpfs[mount.target] = mount.options
            else:
                binds.append(mount.bind())
        config = state.config
        req = CreateRequest(stage.image_id, cmd=argv, entrypoint="", env=[f"{k}={v}" for k, v in run_args.items()],
                            workdir=config.get("WorkingDir") or None, user=config.get("User") or None,
                            network=NETWORKS.get(network, network), healthcheck={"Test": ["NONE"]},
                            mounts=MountRequest(binds=binds, tmpfs=tmpfs) if binds or tmpfs else None)
        shown_cmd = " ".join(argv)

        def run(record: dict) -> None:
            self.say(f" ---> Running in {record['Id'][:12]}\n")
            code = self._run_container(record, script[1].encode() if script is not None else None)
            if code != 0:
                raise RunFailed(f"The command '{shown_cmd}' returned a non-zero code: {code}", code)

        self._in_container(stage, created_by, run, req, announce=True)
        self.cache.put(key, stage.image_id, stage.image.manifest_digest)

    def _run_argv(self, stage: _Stage, node) -> tuple[list[str], tuple[str, str] | None]:
        """The RUN's command line, and (name, text) of a script its interpreter reads on stdin."""
        args = list(node.args)
        if node.heredocs and not node.is_json:
            # buildkit: a lone heredoc is the script; otherwise the shell gets the heredocs too.
            heredoc = node.heredocs[0]
            if len(node.heredocs) == 1 and args and args[0].strip() == "<<" + ("-" if heredoc.chomp else "") \
                    + _heredoc_word(node, heredoc):
                text = heredoc.text()
                if text.startswith("#!"):  # buildkit runs it as a file: its interpreter, as the kernel would
                    line = text.partition("\n")[0][2:].strip()
                    interpreter, _, argument = line.partition(" ")
                    argv = [interpreter] + ([argument.strip()] if argument.strip() else []) + ["/dev/stdin"]
                    return argv, (heredoc.name, text)
                return dockerfile.with_shell(stage.state, [text]), None
            full = args[0] if args else ""
            for heredoc in node.heredocs:
                full += "\n" + heredoc.content + heredoc.name
            return dockerfile.with_shell(stage.state, [full]), None
        line = dockerfile.cmd_line(args, node.is_json)
        return (line if node.is_json else dockerfile.with_shell(stage.state, line)), None

    def _run_container(self, record: dict, stdin: bytes | None = None) -> int:
        """Start the step's container with its output on ours (through out), wait for it;
        `stdin`: what its stdin reads (else nothing)."""
        import codecs

        from berth.runtime.reap import reap_orphans, wait_exit_code

        reader, writer = os.pipe()
        if stdin is None:
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        else:  # a file nobody else can open: unlinked at once, read from its start
            import tempfile

            with tempfile.TemporaryFile() as script:
                script.write(stdin)
                script.flush()
                null = os.dup(script.fileno())
            os.lseek(null, 0, os.SEEK_SET)
        try:
            launched = self.engine.start(record, stdio=(null, writer, writer))
        except BaseException:
            os.close(reader)
            raise
        finally:
            os.close(writer)
            os.close(null)
        code = None
        try:
            decoder = codecs.getincrementaldecoder("utf-8")("replace")
            while chunk := os.read(reader, 1 << 16):
                self.say(decoder.decode(chunk))
            code = wait_exit_code(launched.pid)
            reap_orphans()
        finally:
            os.close(reader)
            if code is None:  # interrupted: the step's container cannot outlive the build
                try:
                    os.kill(launched.pid, 9)
                except ProcessLookupError:
                    pass
                code = wait_exit_code(launched.pid)
            self.engine.finish(record["Id"], launched, code)
        return code

    def _parse_mount(self, node, spec: str):
        from berth.engine.build_context import RunMount

        try:
            return RunMount.parse(spec, self)
        except ValueError as err:
            raise _line_error(node, str(err)) from None

    # -- COPY and ADD -------------------------------------------------------------------
    def _copy(self, stage: _Stage, step: _Step, add: bool) -> None:
        node = step.node
        state = stage.state
        flags = step.flags
        name = "ADD" if add else "COPY"
        heredocs = {h.name: h for h in node.heredocs}
        words = []
        for word in node.args:
            heredoc = _heredoc_of_word(word, heredocs)
            if heredoc is None:
                words.append(self._expand(node, word, state.env()))
            else:
                text = heredoc.text()
                if heredoc.expand:
                    text = _expand_heredoc(text, lambda token: self._expand(node, token, state.env()))
                words.append((heredoc.name, text.encode()))
        dest = words[-1]
        if isinstance(dest, tuple):
            raise _line_error(node, f"{name} destination can not be a heredoc")
        sources = words[:-1]
        dest_is_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        workdir = state.config.get("WorkingDir") or "/"
        dest_path = posixpath.normpath(posixpath.join(workdir, dest))
        chown = self._expand(node, flags["chown"], state.env()) if flags.get("chown") else ""
        owner = self._owner(stage, node, chown) if chown else (0, 0)
        mode = _chmod(flags["chmod"]) if flags.get("chmod") else None
        source_stage = None
        if flags.get("from"):
            source_stage = self._source_of(node, self._expand(node, flags["from"], state.env()))
        try:
            if source_stage is not None:
                found = Sources.from_image(self.store, source_stage, sources, owner, mode)
            else:
                found = self.context.sources(sources, owner, mode, add, name)
        except ValueError as err:
            raise InvalidArgument(f"{name} failed: {err}") from None
        if (len(found.items) > 1 or found.has_dir_source) and not dest_is_dir and len(sources) > 1:
            raise InvalidArgument(f"When using {name} with more than one source file, the destination "
                                  "must be a directory and end with a /")
        single = len(found.items) == 1 and not found.has_dir_source and not dest_is_dir
        chown_comment = f"--chown={chown}" if chown else ""
        digest = found.digest() if source_stage is None else found.image_digest()
        created_by = " ".join(_shell(stage) + [f"#(nop) {name} {chown_comment}{digest} in {dest} "])
        key = self.cache.key(stage.image_id, created_by, state.config, mode, owner, dest_path, stage.author)
        if self._cached(stage, key):
            return
        found.prepare(self.store)
        try:
            self._in_container(stage, created_by, lambda record: self._copy_into(
                record, dest_path, found, owner, single))
        finally:
            found.close()
        self.cache.put(key, stage.image_id, stage.image.manifest_digest)

    def _source_of(self, node, ref: str):
        for other in self.stages:
            if other.name and other.name == ref.lower() or ref.isdigit() and other.index == int(ref):
                if other.image is None and other.state is None:
                    raise _line_error(node, f"invalid from flag value {ref}: stage not built yet")
                if other.image is None:
                    self._materialize(other)
                return other.image
        return self._base_image(ref)

    def _owner(self, stage: _Stage, node, chown: str) -> tuple[int, int]:
        user, _, group = chown.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group or user)
        from berth.engine.users import read_layered_file, resolve

        layers = list(reversed(self.store.unpacked_layer_dirs(stage.image))) if stage.image is not None else []
        try:
            found = resolve(chown if group else user, read_layered_file(layers, "/etc/passwd"),
                            read_layered_file(layers, "/etc/group"))
        except BerthError as err:
            raise InvalidArgument(f"unable to convert uid/gid chown string to host mapping: {err}") from None
        return found.uid, found.gid

    def _copy_into(self, record: dict, dest: str, sources, owner: tuple[int, int], single: bool = False) -> None:
        from berth.engine.copy import build_copy  # lazy: only COPY, ADD and WORKDIR

        build_copy(self.engine, record["Id"], dest, sources, owner, single)

    # -- containers and images of steps ---------------------------------------------------
    def _materialize(self, stage: _Stage) -> None:
        """FROM scratch made no image: one with no layers, for what needs one."""
        config = {"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []},
                  "history": []}
        self.store.ensure()
        image_id = self.store.add_image(config, [])
        stage.image = self.store.get(image_id)

    def _in_container(self, stage: _Stage, created_by: str, work, req=None, announce: bool = False) -> None:
        """work(record) with a container of the stage's image; its changes become a layer of
        the next image. The container goes whatever happens."""
        from berth.engine.containers import CreateRequest  # lazy: the engine's own modules

        if stage.image is None:
            self._materialize(stage)
        if req is None:
            req = CreateRequest(stage.image_id, cmd=["/bin/sh"], entrypoint="", network="none")
        record = self.engine.create(req)
        try:
            work(record)
            self._commit(stage, created_by, record)
        finally:
            self._remove(record, announce)

    def _remove(self, record: dict, announce: bool) -> None:
        try:
            self.engine.remove(self.engine.load(record["Id"]), force=True, volumes=True)
        except NotFound:
            pass
        except FileNotFoundError:
            pass
        if announce:
            self.say(f"Removing intermediate container {record['Id'][:12]}\n")

    def _commit(self, stage: _Stage, created_by: str, record: dict) -> None:
        from berth.image.diff import LayerWriter  # lazy: only steps that write a layer

        store = self.store
        tar_path = os.path.join(store.staging_dir(), f"build-{os.getpid()}-{os.urandom(8).hex()}")
        fd = os.open(tar_path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            try:
                diff_id = LayerWriter(record["GraphDriver"]["Data"]["UpperDir"], fd).write()
            finally:
                os.close(fd)
            self._add_image(stage, created_by, None if diff_id == EMPTY_LAYER else diff_id, tar_path)
        finally:
            if os.path.exists(tar_path):
                os.unlink(tar_path)

    def _add_image(self, stage: _Stage, created_by: str, diff_id: str | None, tar_path: str | None) -> None:
        from berth.image.store import LAYER_TYPE  # lazy: only build and commit write images
        from berth.units import format_rfc3339_nano

        store = self.store
        store.ensure()
        base = stage.image
        created = format_rfc3339_nano(time.time())
        if base is not None:
            image_config = {k: v for k, v in base.config.items()
                            if k not in ("config", "rootfs", "history", "created", "container_config", "container")}
            history = list(base.config.get("history") or [])
            diff_ids = list(base.diff_ids)
            layers = list(store.read_manifest(base.manifest_digest)["layers"])
        else:
            image_config = {"architecture": "amd64", "os": "linux"}
            history, diff_ids, layers = [], [], []
        entry = {"created": created, "created_by": created_by}
        if stage.author:
            entry["author"] = image_config["author"] = stage.author
        if diff_id is None:
            entry["empty_layer"] = True
        history.append(entry)
        image_config.update(created=created, config=_copy_config(stage.state.config), history=history)
        with store.writing():
            if diff_id is not None:
                store.add_layer_blob(diff_id, tar_path)
                diff_ids.append(diff_id)
                layers.append({"mediaType": LAYER_TYPE, "digest": diff_id,
                               "size": os.path.getsize(store.blob_path(diff_id))})
            image_config["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
            image_id = store.add_image(image_config, layers)
            if base is not None:
                self.cache.put_parent(image_id, base.id)
            stage.image = store.get(image_id)


# -- helpers ---------------------------------------------------------------------------

def _valid_stage_name(name: str) -> bool:
    import re

    return re.fullmatch(r"[a-z][a-z0-9\-_.]*", name) is not None


def _copy_config(config):
    """A deep copy of a config (JSON data), without the `copy` module's import."""
    if isinstance(config, dict):
        return {k: _copy_config(v) for k, v in config.items()}
    if isinstance(config, list):
        return [_copy_config(v) for v in config]
    return config


def _shell(stage: _Stage) -> list[str]:
    return list(stage.state.config.get("Shell") or dockerfile.DEFAULT_SHELL)


def _run_flags(node) -> dict:
    """RUN's flags: --mount repeats; --network once; --security=insecure is refused."""
    flags: dict = {}
    for flag in node.flags:
        name, has_value, value = flag[2:].partition("=")
        if name not in _RUN_FLAGS:
            raise ValueError(f"unknown flag: --{name}")
        if not has_value:
            raise ValueError(f"missing a value on flag: --{name}")
        if name == "mount":
            flags.setdefault("mount", []).append(value)
            continue
        if name in flags:
            raise ValueError(f"duplicate flag specified: --{name}")
        if name == "network" and value not in NETWORKS:
            raise ValueError(f"network mode {quote(value)} not supported")
        if name == "security" and value != "sandbox":
            raise ValueError("security mode insecure is not allowed: berth runs every step sandboxed")
        flags[name] = value
    return flags


def _chmod(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise ValueError(f"invalid chmod parameter: {value}. it should be octal string and between 0 and "
                         "07777") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"invalid chmod parameter: {value}. it should be octal string and between 0 and 07777")
    return mode


def _heredoc_word(node, heredoc) -> str:
    """How the heredoc's name was written on the line (quotes kept)."""
    import re

    match = re.search(r"<<-?[ \t]*([\"']?)" + re.escape(heredoc.name) + r"\1", node.original)
    return match.group(0).lstrip("<-").strip() if match else heredoc.name


def _heredoc_of_word(word: str, heredocs: dict):
    """A COPY/ADD source written as <<NAME: the heredoc it names."""
    if not word.startswith("<<") or not heredocs:
        return None
    name = word[2:].lstrip("-").strip().strip("'\"")
    return heredocs.get(name)


def _expand_heredoc(text: str, expand) -> str:
    """$VAR and ${VAR...} in a heredoc's content (quotes are text there, not syntax)."""
    import re

    return re.sub(r"\$(\{[^}]*\}|[A-Za-z_][A-Za-z0-9_]*)", lambda m: expand(m.group(0)), text)


def _literal_label(key: str, value: str):
    def apply(state) -> None:
        labels = dict(state.config.get("Labels") or {})
        labels[key] = value
        state.config["Labels"] = labels

    return apply


def _go_quote_list(values) -> str:
    """Go's %q of a []string: ["a" "b"]; of a nil one: []."""
    return "[" + " ".join(quote(v) for v in values or ()) + "]"


def _commit_comment(node, state) -> str:
    """What moby's dispatchers write after "#(nop) " for a config-only instruction."""
    name = node.name.upper()
    config = state.config
    if name == "CMD":
        return f"CMD {_go_quote_list(config.get('Cmd'))}"
    if name == "ENTRYPOINT":
        return f"ENTRYPOINT {_go_quote_list(config.get('Entrypoint'))}"
    if name == "SHELL":
        return f"SHELL [{' '.join(config.get('Shell') or ())}]"
    if name == "EXPOSE":  # buildkit's parser sorts the words, moby writes them so
        return "EXPOSE " + " ".join(_unquoted(word, state) for word in sorted(node.args))
    if name == "VOLUME":
        return f"VOLUME [{' '.join(node.args)}]"
    if name == "HEALTHCHECK":
        return "HEALTHCHECK " + _go_healthcheck(config.get("Healthcheck") or {})
    if name == "ONBUILD":
        return "ONBUILD " + (config.get("OnBuild") or [""])[-1]
    if name == "WORKDIR":
        return "WORKDIR " + (config.get("WorkingDir") or "")
    if name == "USER":
        return "USER " + (config.get("User") or "")
    if name == "STOPSIGNAL":
        return "STOPSIGNAL " + (config.get("StopSignal") or "")
    return node.original.strip()


def _unquoted(word: str, state) -> str:
    try:
        return state.expand(word)
    except ValueError:
        return word


def _go_healthcheck(health: dict) -> str:
    from berth.gotime import go_duration  # lazy: only a HEALTHCHECK step

    # dockerd 25+ (its HealthConfig gained StartInterval; 20.10 printed three durations)
    keys = ("Interval", "Timeout", "StartPeriod", "StartInterval")
    durations = " ".join(quote(go_duration(health.get(k) or 0)) for k in keys)
    return f"&{{{_go_quote_list(health.get('Test'))} {durations} {_go_char(health.get('Retries') or 0)}}}"


def _go_char(n: int) -> str:
    """Go's %q of an int: the character it codes, quoted."""
    if n < 0x20 or n == 0x7f:
        return f"'\\x{n:02x}'"
    return repr(chr(n))

