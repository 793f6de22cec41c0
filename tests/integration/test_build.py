"""`berth build`: real builds with busybox: every instruction, multi-stage, the step cache,
build args, heredocs, errors with line numbers, and no container left by a failing step."""

import json
import os
import subprocess
import sys
import tarfile

import pytest


def _write(directory, files: dict) -> str:
    for name, content in files.items():
        path = os.path.join(str(directory), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
    return str(directory)


def _inspect(berth, ref: str) -> dict:
    return json.loads(berth.ok("image", "inspect", ref))[0]


def _history(berth, ref: str) -> list[str]:
    return berth.ok("history", "--no-trunc", "--format", "{{.CreatedBy}}", ref).splitlines()


def _run(berth, ref: str, *cmd: str) -> str:
    return berth.ok("run", "--rm", "--network", "none", "--entrypoint", "", ref, *cmd)


def test_config_instructions_give_dockers_config(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": """
FROM busybox
ENV A=1 B="two words"
ENV C $A-x
LABEL org.example.name="app" version=1
EXPOSE 80 443/udp 8000-8001
VOLUME ["/data", "/logs"]
WORKDIR /srv
WORKDIR app
USER 1000:1000
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q localhost || exit 1
ONBUILD RUN echo child
SHELL ["/bin/sh", "-e", "-c"]
ENTRYPOINT ["/bin/echo", "x"]
CMD run this
"""})
    busybox.ok("build", "-t", "cfg", ctx)
    config = _inspect(busybox, "cfg")["Config"]
    assert config["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1",
                             "B=two words", "C=1-x"]
    assert config["Labels"] == {"org.example.name": "app", "version": "1"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "443/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert config["Volumes"] == {"/data": {}, "/logs": {}}
    assert config["WorkingDir"] == "/srv/app"
    assert config["User"] == "1000:1000"
    assert config["StopSignal"] == "SIGQUIT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q localhost || exit 1"], "Interval": 5000000000,
                                     "Timeout": 2000000000, "Retries": 4}
    assert config["OnBuild"] == ["RUN echo child"]
    assert config["Shell"] == ["/bin/sh", "-e", "-c"]
    assert config["Entrypoint"] == ["/bin/echo", "x"]
    assert config["Cmd"] == ["/bin/sh", "-e", "-c", "run this"]  # the shell form goes through SHELL
    history = _history(busybox, "cfg")
    assert history[0] == '/bin/sh -e -c #(nop)  CMD ["/bin/sh" "-e" "-c" "run this"]'
    assert "/bin/sh -c #(nop)  ENV A=1 B=two words" in history
    assert "/bin/sh -c #(nop)  EXPOSE 443/udp 80 8000-8001" in history  # sorted, as buildkit's parser does
    assert "/bin/sh -c #(nop) WORKDIR /srv/app" in history
    entries = _inspect_history(busybox, "cfg")
    assert all(e.get("empty_layer") for e in entries[-10:] if "#(nop)  " in e["created_by"])
    # The workdir was made; its owner is root, as docker's classic builder makes it.
    assert _run(busybox, "cfg", "stat", "-c", "%U %F", "/srv/app").strip() == "root directory"


def test_workdir_is_made_again_after_a_step_deleted_it(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN mkdir -p /app/x && echo hi > /app/x/f\n"
                                          "RUN rm -rf /app && mkdir /app\nWORKDIR /app/x\n"})  # /app: opaque
    busybox.ok("build", "-t", "rewd", ctx)
    # -w /: the run itself makes no /app/x; the image's WORKDIR step must have
    assert busybox.ok("run", "--rm", "--network", "none", "-w", "/", "rewd", "ls", "-A", "/app/x") == ""


def _inspect_history(berth, ref: str) -> list[dict]:
    """The image config's history entries, oldest first (from the store's config blob)."""
    image_id = _inspect(berth, ref)["Id"]
    with open(os.path.join(berth.root, "image", "blobs", "sha256", image_id.partition(":")[2])) as f:
        return json.load(f)["history"]


def test_run_copy_add_and_their_layers(busybox, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "f.txt").write_text("in a tar\n")
    with tarfile.open(str(tmp_path / "files.tar.gz"), "w:gz") as tar:
        tar.add(str(inner / "f.txt"), arcname="d/f.txt")
    ctx = _write(tmp_path, {
        "a.conf": "a\n", "b.conf": "b\n", "skip.txt": "no\n",
        "tree/one": "1\n", "tree/sub/two": "2\n",
        "Dockerfile": """
FROM busybox
RUN echo from-run > /run.txt && echo shown on output
COPY *.conf /etc/app/
COPY --chown=1000:1000 --chmod=0640 tree /opt/tree
COPY a.conf /renamed
ADD files.tar.gz /unpacked/
RUN ["sh", "-c", "echo exec form > /exec.txt"]
"""})
    out = busybox.ok("build", "-t", "files", ctx)
    assert "shown on output\n" in out
    assert " ---> Running in " in out and "Removing intermediate container " in out
    assert out.rstrip().endswith("Successfully tagged files:latest")
    listing = _run(busybox, "files", "sh", "-c",
                   "cat /run.txt /exec.txt /etc/app/a.conf /etc/app/b.conf /renamed /unpacked/d/f.txt; "
                   "ls /etc/app; stat -c '%u:%g %a %n' /opt/tree/one /opt/tree/sub/two /opt/tree/sub")
    assert listing.splitlines() == [
        "from-run", "exec form", "a", "b", "a", "in a tar", "a.conf", "b.conf",
        "1000:1000 640 /opt/tree/one", "1000:1000 640 /opt/tree/sub/two", "1000:1000 640 /opt/tree/sub"]
    history = _history(busybox, "files")
    assert history[0] == "sh -c echo exec form > /exec.txt"
    assert history[-2] == "/bin/sh -c echo from-run > /run.txt && echo shown on output"
    assert history[-3].startswith("/bin/sh -c #(nop) COPY multi:") and history[-3].endswith(" in /etc/app/ ")
    assert history[-4].startswith("/bin/sh -c #(nop) COPY --chown=1000:1000dir:")
    assert history[-5].startswith("/bin/sh -c #(nop) COPY file:") and history[-5].endswith(" in /renamed ")
    assert len(_inspect(busybox, "files")["RootFS"]["Layers"]) == 1 + 6


def test_multi_stage_target_and_copy_from(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": """
FROM busybox AS builder
RUN mkdir /out && echo built > /out/artifact
FROM builder AS tester
RUN echo tested > /out/tested
FROM busybox
COPY --from=builder /out/artifact /app/
COPY --from=0 /out /all
"""})
    busybox.ok("build", "-t", "final", ctx)
    assert _run(busybox, "final", "sh", "-c", "cat /app/artifact; ls /all").split() == ["built", "artifact"]
    assert not [n for n in os.listdir(os.path.join(busybox.root, "image", "tmp")) if n.startswith("build")]
    out = busybox.ok("build", "--target", "tester", "-t", "tester", ctx)
    assert "Step 4/4 : RUN echo tested > /out/tested" in out
    assert _run(busybox, "tester", "cat", "/out/tested").strip() == "tested"
    busybox.fails(1, "build", "--target", "nosuch", ctx, says="failed to reach build target nosuch in Dockerfile")


def test_cache_hits_and_a_changed_copy_source_invalidates_from_there(busybox, tmp_path):
    ctx = _write(tmp_path, {"one": "1\n", "two": "2\n", "Dockerfile": """
FROM busybox
ENV A=1
COPY one /one
RUN echo ran-three
COPY two /two
RUN echo ran-five
"""})
    first = busybox.ok("build", "-t", "cached", ctx)
    assert "\nran-three\n" in first and "Using cache" not in first
    again = busybox.ok("build", "-t", "cached", ctx)
    assert again.count(" ---> Using cache\n") == 5
    assert "\nran-three\n" not in again
    assert _inspect(busybox, "cached")["Id"].partition(":")[2].startswith(again.split("Successfully built ")[1][:12])
    _write(tmp_path, {"two": "changed\n"})
    changed = busybox.ok("build", "-t", "cached", ctx)
    assert changed.count(" ---> Using cache\n") == 3  # ENV, COPY one, RUN: before the change
    assert "\nran-five\n" in changed and "\nran-three\n" not in changed
    assert _run(busybox, "cached", "cat", "/two").strip() == "changed"
    # A mode change alone is a change too.
    os.chmod(os.path.join(ctx, "two"), 0o600)
    assert busybox.ok("build", ctx).count(" ---> Using cache\n") == 3
    fresh = busybox.ok("build", "--no-cache", ctx)
    assert "Using cache" not in fresh and "\nran-three\n" in fresh


def test_the_cache_survives_across_builds_and_builder_prune_clears_it(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo cached-step > /f\n"})
    busybox.ok("build", "-t", "p", ctx)
    assert "Using cache" in busybox.ok("build", ctx)
    out = busybox.ok("builder", "prune", "-f")
    assert out.startswith("Total reclaimed space: ")
    rebuilt = busybox.ok("build", "-t", "p", ctx)
    assert "Using cache" not in rebuilt and "Running in" in rebuilt


def test_intermediate_images_hidden_and_removed_with_the_image(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nENV A=1\nRUN echo x > /x\nCMD [\"x\"]\n"})
    busybox.ok("build", "-t", "layered", ctx)
    shown = busybox.ok("images", "--format", "{{.Repository}}").split()
    assert sorted(shown) == ["busybox", "layered"]  # the steps' images only with -a, as docker
    assert len(busybox.ok("images", "-aq").split()) == 1 + 3  # busybox and one image a step
    assert "Deleted Images" not in busybox.ok("image", "prune", "-f")  # they are not dangling
    kept = busybox.ok("rmi", "--no-prune", "layered")
    assert kept.count("Deleted: sha256:") >= 1 and len(busybox.ok("images", "-aq").split()) == 1 + 2
    busybox.ok("build", "-t", "layered", ctx)
    removed = busybox.ok("rmi", "layered")
    assert removed.startswith("Untagged: layered:latest\n")
    assert busybox.ok("images", "-aq").split() == [_inspect(busybox, "busybox")["Id"][7:19]]


def test_build_args(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": """
ARG BASE=busybox
FROM $BASE
ARG NAME=default
ARG EMPTY
ENV GREETING="hello ${NAME}" FALLBACK=${EMPTY:-fb} PLUS=${NAME:+set}
RUN echo "name=$NAME proxy=$http_proxy" > /args
"""})
    out = busybox.ok("build", "--build-arg", "NAME=world", "--build-arg", "http_proxy=http://127.0.0.1:9",
                     "--build-arg", "UNUSED=1", "-t", "args", ctx)
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in out
    assert _run(busybox, "args", "cat", "/args").strip() == "name=world proxy=http://127.0.0.1:9"
    env = _inspect(busybox, "args")["Config"]["Env"]
    assert "GREETING=hello world" in env and "FALLBACK=fb" in env and "PLUS=set" in env
    assert not any(e.startswith(("NAME=", "http_proxy=")) for e in env)  # args are not kept
    # docker's history: the declared args the RUN saw, not the predefined proxy ones
    assert _history(busybox, "args")[0] == '|1 NAME=world /bin/sh -c echo "name=$NAME proxy=$http_proxy" > /args'
    out = busybox.ok("build", "-t", "args2", ctx)
    assert _run(busybox, "args2", "cat", "/args").strip() == "name=default proxy="


def test_heredocs_and_escape_directive(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": """# syntax=docker/dockerfile:1
# escape=`
FROM busybox
ENV WHO=heredoc
RUN <<EOF
echo one > /script
echo two >> /script
EOF
RUN cat <<-EOT > /shelled
	kept $WHO
	EOT
COPY <<EOF /copied.txt
hello $WHO
EOF
COPY <<"EOF" /literal.txt
hello $WHO
EOF
RUN echo a `
    b > /continued
RUN <<EOF
#!/bin/awk -f
BEGIN { print "awk ran this" > "/by-awk" }
EOF
"""})
    busybox.ok("build", "-t", "here", ctx)
    out = _run(busybox, "here", "sh", "-c", "cat /script /shelled /copied.txt /literal.txt /continued /by-awk")
    assert out.splitlines() == ["one", "two", "kept heredoc", "hello heredoc", "hello $WHO", "a b", "awk ran this"]
    # a script with #! runs with its interpreter (buildkit's), not the shell
    assert _history(busybox, "here")[:2] == ["/bin/awk -f /dev/stdin <<EOF", "#!/bin/awk -f"]


def test_onbuild_triggers_run_in_the_child_build(busybox, tmp_path):
    parent = _write(tmp_path / "parent", {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /trig\n"})
    busybox.ok("build", "-t", "withtrigger", parent)
    child = _write(tmp_path / "child", {"Dockerfile": "FROM withtrigger\nRUN cat /trig\n"})
    out = busybox.ok("build", "-t", "child", child)
    assert "# Executing 1 build trigger\n" in out
    assert not _inspect(busybox, "child")["Config"].get("OnBuild")


@pytest.mark.parametrize("dockerfile, says", [
    ("FROM busybox\nENV A=1\nFOO bar\n", "dockerfile parse error on line 3: unknown instruction: FOO"),
    ("FROM busybox\nRUN echo \\\n  more\nEXPOSE nope\n",
     "dockerfile parse error on line 4: invalid containerPort: nope"),
    ("ENV A=1\nFROM busybox\n", "dockerfile parse error on line 1: no build stage in current context"),
    ("FROM busybox\nCOPY onlyone\n", "dockerfile parse error on line 2: COPY requires at least two arguments"),
    ("FROM busybox\nRUN <<EOF\necho\n", "dockerfile parse error on line 2: unterminated heredoc"),
    ("FROM busybox\nSHELL sh -c\n",
     "dockerfile parse error on line 2: SHELL requires the arguments to be in JSON form"),
    ("FROM busybox\nCOPY ../outside /\n", "COPY failed: forbidden path outside the build context: ../outside ()"),
    ("FROM busybox\nCOPY missing /\n", "COPY failed: file not found in build context or excluded by .dockerignore: "
                                       "stat missing: file does not exist"),
    ("FROM busybox\nADD http://127.0.0.1:9/x /\n", "berth builds offline"),
    ("", "the Dockerfile (Dockerfile) cannot be empty"),
])
def test_dockerfile_errors(busybox, tmp_path, dockerfile, says):
    ctx = _write(tmp_path, {"Dockerfile": dockerfile})
    busybox.fails(1, "build", ctx, says=says)
    assert busybox.container_ids() == []


def test_a_failing_run_says_its_code_and_leaves_no_container(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo partial-output; exit 3\n"})
    result = busybox("build", "-t", "broken", ctx)
    assert result.returncode == 3  # docker's CLI exits with the command's code
    assert "partial-output" in result.stdout
    assert result.stderr.strip() == "The command '/bin/sh -c echo partial-output; exit 3' returned a non-zero code: 3"
    assert busybox.container_ids() == []
    assert busybox("image", "inspect", "broken").returncode == 1
    assert busybox.ok("ps", "-aq") == ""


def test_a_symlink_in_the_context_cannot_reach_outside(busybox, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("host secret\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    os.symlink(str(secret), str(ctx / "link"))  # absolute: resolved inside the context, as docker does
    os.symlink("../secret", str(ctx / "rel"))
    _write(ctx, {"Dockerfile": "FROM busybox\nCOPY link /a\n"})
    busybox.fails(1, "build", str(ctx), says="file not found in build context")
    _write(ctx, {"Dockerfile": "FROM busybox\nCOPY rel /a\n"})
    busybox.fails(1, "build", str(ctx), says="file not found in build context")


def test_run_mounts_cache_bind_and_tmpfs(busybox, tmp_path):
    ctx = _write(tmp_path, {"src/input": "from context\n", "Dockerfile": """
FROM busybox
RUN --mount=type=cache,target=/cache echo x >> /cache/count && wc -l < /cache/count > /count-seen
RUN --mount=type=bind,source=src,target=/mnt cp /mnt/input /copied && ! touch /mnt/write
RUN --mount=type=tmpfs,target=/scratch echo t > /scratch/t && grep -q ' /scratch tmpfs' /proc/mounts
"""})
    busybox.ok("build", "-t", "mounts", ctx)
    seen = _run(busybox, "mounts", "sh", "-c", "cat /count-seen /copied; find /cache /scratch -mindepth 1 | wc -l")
    assert seen.split() == ["1", "from", "context", "0"]  # what the mounts held is in no layer
    busybox.ok("build", "--no-cache", "-t", "mounts", ctx)
    assert _run(busybox, "mounts", "cat", "/count-seen").strip() == "2"  # the cache mount kept its content
    assert not os.path.exists(os.path.join(ctx, "src", "write"))


def test_quiet_iidfile_labels_and_network_none(busybox, tmp_path):
    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo noisy && ! ip link show eth0\n"})
    iid = str(tmp_path / "iid")
    out = busybox.ok("build", "-q", "--network", "none", "--iidfile", iid, "--label", "built.by=test", ctx)
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71 and "noisy" not in out
    with open(iid) as f:
        assert f.read() == image_id
    assert _inspect(busybox, image_id)["Config"]["Labels"] == {"built.by": "test"}
    busybox.fails(1, "build", "--network", "bogus", ctx, says="network mode")


def test_image_build_alias_and_dockerfile_flag(busybox, tmp_path):
    ctx = _write(tmp_path, {"docker/Custom.df": "FROM busybox\nCMD [\"custom\"]\n"})
    busybox.ok("image", "build", "-f", os.path.join(ctx, "docker/Custom.df"), "-t", "custom:1", "-t", "custom:2", ctx)
    assert _inspect(busybox, "custom:1")["Id"] == _inspect(busybox, "custom:2")["Id"]
    assert _inspect(busybox, "custom:2")["Config"]["Cmd"] == ["custom"]
    busybox.fails(1, "build", "-f", "nonexistent", ctx, says="Cannot locate specified Dockerfile")
    busybox.ok("build", "-f", "-", "-t", "fromstdin", ctx, input="FROM busybox\nCMD [\"stdin\"]\n")
    assert _inspect(busybox, "fromstdin")["Config"]["Cmd"] == ["stdin"]
    busybox.fails(125, "build", "-t", "UPPER", ctx, says='invalid argument "UPPER" for "-t, --tag" flag: '
                  "invalid reference format: repository name (library/UPPER) must be lowercase")
    busybox.fails(1, "build", str(tmp_path / "nowhere"), says="unable to prepare context: path")


def test_run_does_not_import_build_modules(busybox):
    """The hot path: `berth run` loads none of build's modules."""
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-X", "importtime", busybox.binary, *busybox.cmd("run", "--rm",
                            "--network", "none", "busybox", "true")[1:]], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for module in ("berth.engine.build", "berth.engine.build_context", "berth.engine.build_cache",
                   "berth.image.dockerignore", "berth.cli.build"):
        assert f" {module}\n" not in result.stderr


# Recorded from dockerd 20.10's classic builder (DOCKER_BUILDKIT=0) for the same Dockerfiles:
# the config (Env and Image left out) and the history's created_by, newest first, hashes masked;
# HEALTHCHECK's as dockerd 25+ writes it (its HealthConfig gained StartInterval: one more "0s").
RECORDED = {
    "health": ("FROM busybox\nHEALTHCHECK --timeout=3s CMD [\"true\"]\nHEALTHCHECK NONE\n",
               {"Cmd": ["sh"], "Healthcheck": {"Test": ["NONE"], "Timeout": 3000000000}},
               ["/bin/sh -c #(nop)  HEALTHCHECK &{[\"NONE\"] \"0s\" \"0s\" \"0s\" \"0s\" '\\x00'}",
                "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD\" \"true\"] \"0s\" \"3s\" \"0s\" \"0s\" '\\x00'}"]),
    "expose": ("FROM busybox\nARG P=8080\nEXPOSE $P 53/udp 9000-9001/tcp\n",
               {"Cmd": ["sh"], "ExposedPorts": {"53/udp": {}, "8080/tcp": {}, "9000/tcp": {}, "9001/tcp": {}}},
               ["/bin/sh -c #(nop)  EXPOSE 8080 53/udp 9000-9001/tcp", "/bin/sh -c #(nop)  ARG P=8080"]),
    "args": ("FROM busybox\nARG X=1\nARG Y\nENV X=env\nRUN echo $X $Y\nARG Z=3\nRUN true\n", {"Cmd": ["sh"]},
             ["|1 Z=3 /bin/sh -c true", "/bin/sh -c #(nop)  ARG Z=3", "/bin/sh -c echo $X $Y",
              "/bin/sh -c #(nop)  ENV X=env", "/bin/sh -c #(nop)  ARG Y", "/bin/sh -c #(nop)  ARG X=1"]),
    "entrypoint": ("FROM busybox\nCMD [\"a\"]\nENTRYPOINT [\"b\"]\n", {"Cmd": ["a"], "Entrypoint": ["b"]},
                   ["/bin/sh -c #(nop)  ENTRYPOINT [\"b\"]", "/bin/sh -c #(nop)  CMD [\"a\"]"]),
    "env": ("FROM busybox\nENV A b c\nENV B=$A\nENV C=\"${A} x\" D='$A'\n", {"Cmd": ["sh"]},
            ["/bin/sh -c #(nop)  ENV C=b c x D=$A", "/bin/sh -c #(nop)  ENV B=b c", "/bin/sh -c #(nop)  ENV A=b c"]),
    "copy": ("FROM busybox\nCOPY f1 /x/\nCOPY f1 f2 /y/\nCOPY d /z\nCOPY f1 rel\nWORKDIR /w\nCOPY f2 .\n",
             {"Cmd": ["sh"], "WorkingDir": "/w"},
             ["/bin/sh -c #(nop) COPY file:H in . ", "/bin/sh -c #(nop) WORKDIR /w",
              "/bin/sh -c #(nop) COPY file:H in rel ", "/bin/sh -c #(nop) COPY dir:H in /z ",
              "/bin/sh -c #(nop) COPY multi:H in /y/ ", "/bin/sh -c #(nop) COPY file:H in /x/ "]),
}


@pytest.mark.parametrize("case", sorted(RECORDED))
def test_config_and_history_as_dockers_classic_builder(busybox, tmp_path, case):
    import re

    dockerfile, config, history = RECORDED[case]
    ctx = _write(tmp_path, {"Dockerfile": dockerfile, "f1": "1\n", "f2": "2\n", "d/f3": "3\n"})
    busybox.ok("build", "-t", "recorded", ctx)
    got = {k: v for k, v in _inspect(busybox, "recorded")["Config"].items()
           if v not in (None, "", [], {}, False) and k not in ("Image", "Env")}
    assert got == config
    shown = [re.sub(r"(file|dir|multi):[0-9a-f]{64}", r"\1:H", line) for line in _history(busybox, "recorded")]
    assert shown[:-1] == history  # the last: busybox's own import


def test_a_build_ended_by_sigterm_removes_its_step_container(busybox, tmp_path):
    import signal

    from conftest import wait_for

    ctx = _write(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo started-step; sleep 60\n"})
    log = str(tmp_path / "out")
    with open(log, "w") as out:
        build = subprocess.Popen(busybox.cmd("build", ctx), stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: "started-step\n" in open(log).read() or build.poll() is not None, 30, "the RUN's output")
        assert build.poll() is None and len(busybox.container_ids()) == 1
        build.send_signal(signal.SIGTERM)
        assert build.wait(timeout=30) == 130
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert busybox.container_ids() == []
    assert "Removing intermediate container" in open(log).read()
