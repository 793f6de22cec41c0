"""The build cases of tests/data/build/<case>/ and what an image built from one looks like: one
code path for docker (scripts/record-build-expectations records expected.json) and for berth
(tests/integration/test_build_compat.py compares with it), since both take the same CLI.

A case is a build context with its Dockerfile and an optional case.json:
  build      {"dockerfile", "target", "build_args", "labels"}: the flags of the build
  checks     commands run in the built image (`[]`: its own command); their output is compared
  tag        the name to build it under (another case's FROM uses it)
  needs      a case to build first (the image this one's FROM names)
  reference  how docker built it when its classic builder cannot: {"builder": "buildkit"} (dockerd's
             built-in BuildKit) or {"dockerfile": "<file>"} (the same steps in a form docker builds);
             for those only Config and the checks are compared, not the history's text"""

import io
import json
import os
import re
import subprocess
import tarfile

CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "build")
EXPECTED = "expected.json"

# The content hash in a COPY/ADD's created_by ("COPY file:<sha256> in /") is docker's tarsum of the
# file's tar header and content: it depends on the mode the checkout gave the file, not on the build.
_SOURCE_HASH = re.compile(r"(file|dir|multi):[0-9a-f]{64}\b")  # "--chown=1:1file:..." has no space
# HEALTHCHECK's created_by is Go's %v of HealthConfig, which gained StartInterval in docker 25
# (API 1.44): dockerd 20.10 prints 4 fields before Retries where today's docker prints 5.
_HEALTHCHECK_20 = re.compile(r'^(/bin/sh -c #\(nop\)  HEALTHCHECK &\{\[.*\] "[^"]*" "[^"]*" "[^"]*") (\'.*\'\})$')
# Config fields whose value is an ID of this daemon's (the parent image), not part of the build's result
_VOLATILE_CONFIG = ("Image", "Hostname")


def cases() -> list[str]:
    return sorted(name for name in os.listdir(CASES_DIR) if os.path.isfile(os.path.join(CASES_DIR, name, "Dockerfile"))
                  or os.path.isfile(os.path.join(CASES_DIR, name, "case.json")))


def spec(case: str) -> dict:
    path = os.path.join(CASES_DIR, case, "case.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def tag_of(case: str) -> str:
    return spec(case).get("tag") or f"berth-compat-{case}:latest"


def build_flags(case: str, reference: bool = False) -> list[str]:
    """`build` flags for the case (docker's, so berth's too), context last. RUN gets no network."""
    options = spec(case).get("build", {})
    dockerfile = options.get("dockerfile")
    if reference:
        dockerfile = spec(case).get("reference", {}).get("dockerfile", dockerfile)
    flags = ["build", "--network", "none", "-t", tag_of(case)]
    if dockerfile:
        flags += ["-f", os.path.join(CASES_DIR, case, dockerfile)]
    if options.get("target"):
        flags += ["--target", options["target"]]
    for key, value in options.get("build_args", {}).items():
        flags += ["--build-arg", f"{key}={value}"]
    for key, value in options.get("labels", {}).items():
        flags += ["--label", f"{key}={value}"]
    return [*flags, os.path.join(CASES_DIR, case)]


def saved_image(archive: bytes) -> dict:
    """The image config in a `save` archive (docker-archive: manifest.json names the config)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        return json.load(tar.extractfile(manifest[0]["Config"]))


def summary(image_config: dict) -> dict:
    """What a case records of an image: its Config (without this daemon's IDs) and its history
    (created_by with the content hashes masked, empty_layer; no times)."""
    config = {k: v for k, v in (image_config.get("config") or {}).items() if k not in _VOLATILE_CONFIG}
    history = [{"created_by": _created_by(entry.get("created_by", "")), "empty_layer": bool(entry.get("empty_layer"))}
               for entry in image_config.get("history", [])]
    return {"config": config, "history": history}


def _created_by(text: str) -> str:
    """created_by as today's docker writes it, content hashes masked."""
    text = _SOURCE_HASH.sub(r"\1:<sha256>", text)
    return _HEALTHCHECK_20.sub(r'\1 "0s" \2', text)


def run_checks(cli: list[str], case: str, env: dict | None = None) -> list[dict]:
    """Each check command run in the built image (no network): its exit code and output."""
    results = []
    for command in spec(case).get("checks", []):
        done = subprocess.run([*cli, "run", "--rm", "--network", "none", tag_of(case), *command], capture_output=True,
                              text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        results.append({"command": command, "exit_code": done.returncode, "stdout": done.stdout})
    return results


def empty(value) -> bool:
    """docker leaves an empty field out or writes null, "", [] or {} depending on its version."""
    return value in (None, "", [], {}, False)


def differences(expected: dict, actual: dict, with_history: bool = True) -> list[str]:
    """Field by field, what berth's image does differently from docker's, one line each."""
    found = []
    want, got = expected["config"], actual["config"]
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key), got.get(key)
        if not (empty(w) and empty(g)) and w != g:
            found.append(f"Config.{key}: docker {json.dumps(w)}, berth {json.dumps(g)}")
    if with_history:
        # both sides read alike (a recording made before a normalisation was added still compares)
        want_h = [{**entry, "created_by": _created_by(entry["created_by"])} for entry in expected["history"]]
        got_h = actual["history"]
        for index in range(max(len(want_h), len(got_h))):
            w = want_h[index] if index < len(want_h) else None
            g = got_h[index] if index < len(got_h) else None
            if w != g:
                found.append(f"history[{index}]: docker {json.dumps(w)}, berth {json.dumps(g)}")
    for want_check, got_check in zip(expected.get("checks", []), actual.get("checks", []), strict=False):
        if want_check != got_check:
            found.append(f"check {json.dumps(want_check['command'])}: docker {json.dumps(want_check)}, "
                         f"berth {json.dumps(got_check)}")
    return found
