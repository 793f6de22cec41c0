"""`berth build` makes the image `docker build` makes: each case of tests/data/build/ is built by
berth and compared, field by field, with what dockerd's classic builder made of it (expected.json,
recorded by scripts/record-build-expectations): the image's Config, its history (created_by,
empty_layer) and the output of commands run in it (files, modes, owners, users). Built again by
docker's CLI through berth's Engine API (POST /build), the result is the same."""

import json
import os
import subprocess

import pytest

import build_compat
from conftest import ApiService

CASES = [case for case in build_compat.cases()
         if os.path.exists(os.path.join(build_compat.CASES_DIR, case, build_compat.EXPECTED))]


def test_every_case_has_its_recording():
    missing = sorted(set(build_compat.cases()) - set(CASES))
    assert not missing, f"no expected.json for {missing}: run scripts/record-build-expectations {' '.join(missing)}"
    assert len(CASES) >= 15


def build(run, case: str) -> None:
    """Build the case (and the one it needs first) with `run(*args)`: berth's CLI or docker's."""
    needs = build_compat.spec(case).get("needs")
    if needs:
        build(run, needs)
    result = run(*build_compat.build_flags(case))
    assert result.returncode == 0, (f"build {' '.join(build_compat.build_flags(case))} -> {result.returncode}\n"
                                    f"{result.stdout}\n{result.stderr}")


@pytest.mark.parametrize("case", CASES)
def test_build_matches_docker(busybox, case):
    build(lambda *args: busybox(*args, timeout=300), case)
    compare(busybox, case)


@pytest.mark.parametrize("case", CASES)
def test_build_through_the_api_matches_docker(api, case):
    env = {**api.env, "DOCKER_BUILDKIT": "0"}
    build(lambda *args: subprocess.run([ApiService.DOCKER_28, *args], capture_output=True, text=True, env=env,
                                       timeout=300, stdin=subprocess.DEVNULL), case)
    compare(api.berth, case)


def compare(berth, case: str) -> None:
    with open(os.path.join(build_compat.CASES_DIR, case, build_compat.EXPECTED)) as f:
        expected = json.load(f)
    saved = berth("save", build_compat.tag_of(case), input=b"")
    assert saved.returncode == 0, saved.stderr
    actual = build_compat.summary(build_compat.saved_image(saved.stdout))
    actual["checks"] = build_compat.run_checks(berth.cmd(), case)
    found = build_compat.differences(expected, actual, with_history=expected["history_compared"])
    assert not found, (f"berth's image of {case} differs from docker's ({expected['reference']}):\n  "
                       + "\n  ".join(found))
