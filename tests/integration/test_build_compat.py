"""`berth build` makes the image `docker build` makes: each case of tests/data/build/ is built by
berth and compared, field by field, with what dockerd's classic builder made of it (expected.json,
recorded by scripts/record-build-expectations): the image's Config, its history (created_by,
empty_layer) and the output of commands run in it (files, modes, owners, users)."""

import json
import os

import pytest

import build_compat

CASES = [case for case in build_compat.cases()
         if os.path.exists(os.path.join(build_compat.CASES_DIR, case, build_compat.EXPECTED))]


def test_every_case_has_its_recording():
    missing = sorted(set(build_compat.cases()) - set(CASES))
    assert not missing, f"no expected.json for {missing}: run scripts/record-build-expectations {' '.join(missing)}"
    assert len(CASES) >= 15


def build(berth, case: str) -> None:
    needs = build_compat.spec(case).get("needs")
    if needs:
        build(berth, needs)
    result = berth(*build_compat.build_flags(case), timeout=300)
    assert result.returncode == 0, (f"berth {' '.join(build_compat.build_flags(case))} -> {result.returncode}\n"
                                    f"{result.stdout}\n{result.stderr}")


@pytest.mark.parametrize("case", CASES)
def test_build_matches_docker(busybox, case):
    with open(os.path.join(build_compat.CASES_DIR, case, build_compat.EXPECTED)) as f:
        expected = json.load(f)
    build(busybox, case)
    saved = busybox("save", build_compat.tag_of(case), input=b"")
    assert saved.returncode == 0, saved.stderr
    actual = build_compat.summary(build_compat.saved_image(saved.stdout))
    actual["checks"] = build_compat.run_checks(busybox.cmd(), case)
    found = build_compat.differences(expected, actual, with_history=expected["history_compared"])
    assert not found, (f"berth's image of {case} differs from docker's ({expected['reference']}):\n  "
                       + "\n  ".join(found))
