"""monitor.lean.read_plan: the plan a supervisor hands to the interpreter it execs, read from
the memfd whose number is its argument (and the fd closed), or given as JSON by the lean
monitor of an earlier berth that runs across an upgrade."""

import os

import pytest

from berth import fastjson
from berth.monitor.lean import read_plan

PLAN = {"id": "c" * 64, "root": "/var/lib/berth", "probing": {"process": {"env": ["SECRET=x" * 20_000]}}}


def test_the_plan_is_read_whole_from_its_memfd_which_is_closed():
    fd = os.memfd_create("berth-plan", 0)
    os.write(fd, fastjson.dumps(PLAN).encode())  # 160 KB: more than one read
    os.lseek(fd, 0, os.SEEK_SET)
    assert read_plan(str(fd)) == PLAN
    with pytest.raises(OSError):
        os.fstat(fd)


def test_an_earlier_berths_plan_on_the_command_line_is_taken_as_it_is():
    assert read_plan(fastjson.dumps(PLAN)) == PLAN
