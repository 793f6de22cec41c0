"""Health check logic without containers: docker's merge of the user's Healthcheck over the
image's, the daemon's validation, the probe command, the schedule (start interval within the
start period while starting) and Go's duration text in the timeout message."""

import time

import pytest

from berth.engine.health import Schedule, merge, probe_command, validate
from berth.errors import InvalidArgument
from berth.gotime import go_duration
from berth.monitor.probing import apply_result, next_delay

IMAGE = {"Test": ["CMD", "check"], "Interval": 5_000_000_000, "Retries": 2}


def test_merge_fills_what_the_user_left_empty_from_the_image():
    assert merge(None, IMAGE) == IMAGE
    assert merge(None, None) is None
    assert merge({"Retries": 7}, IMAGE) == {"Test": ["CMD", "check"], "Interval": 5_000_000_000, "Retries": 7}
    assert merge({"Test": ["NONE"]}, IMAGE) == {"Test": ["NONE"], "Interval": 5_000_000_000, "Retries": 2}
    assert list(merge({"Timeout": 1_000_000, "Test": ["CMD-SHELL", "x"]}, None)) == ["Test", "Timeout"]


@pytest.mark.parametrize("health, message", [
    ({"Interval": 999_999}, "Interval in Healthcheck cannot be less than 1ms"),
    ({"Timeout": 1}, "Timeout in Healthcheck cannot be less than 1ms"),
    ({"StartPeriod": 5}, "StartPeriod in Healthcheck cannot be less than 1ms"),
    ({"StartInterval": 5}, "StartInterval in Healthcheck cannot be less than 1ms"),
    ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
])
def test_validate_refuses_as_dockers_daemon(health, message):
    with pytest.raises(InvalidArgument, match=message):
        validate(health)


def test_validate_takes_zero_as_the_default():
    validate({"Test": ["CMD", "x"], "Interval": 0, "Timeout": 1_000_000})
    validate(None)


@pytest.mark.parametrize("test, argv", [
    (["CMD-SHELL", "curl -f localhost"], ["/bin/sh", "-c", "curl -f localhost"]),
    (["CMD", "check", "--deep"], ["check", "--deep"]),
    (["NONE"], None),
    ([], None),
    (["CMD"], None),
])
def test_probe_command(test, argv):
    assert probe_command({"Config": {"Healthcheck": {"Test": test}}}) == argv


def test_probe_command_uses_the_containers_shell():
    config = {"Healthcheck": {"Test": ["CMD-SHELL", "true"]}, "Shell": ["/bin/ash", "-c"]}
    assert probe_command({"Config": config}) == ["/bin/ash", "-c", "true"]


def test_schedule_defaults_and_start_interval():
    schedule = Schedule({})
    assert (schedule.interval, schedule.timeout, schedule.start_interval, schedule.retries) == (30, 30, 5, 3)
    schedule = Schedule({"Interval": 2_000_000_000, "StartPeriod": 60_000_000_000, "StartInterval": 100_000_000})
    plan = {"interval": schedule.interval, "start_period": schedule.start_period,
            "start_interval": schedule.start_interval, "started": time.time()}
    assert next_delay(plan, "starting") == 0.1
    assert next_delay(plan, "healthy") == 2  # a first success ends the start interval
    assert next_delay(dict(plan, started=time.time() - 61), "starting") == 2


def test_probe_results_follow_dockers_rules():
    plan = {"retries": 2, "start_period": 60.0, "started": time.time()}
    health = {"Status": "starting", "FailingStreak": 0, "Log": []}
    failed = {"Start": "2099-01-01T00:00:00Z", "End": "2099-01-01T00:00:00Z", "ExitCode": 1, "Output": ""}
    early = dict(failed, Start="1970-01-01T00:00:00Z")
    apply_result(health, dict(early, Start=_rfc3339(time.time())), plan)  # in the start period: not counted
    assert (health["Status"], health["FailingStreak"]) == ("starting", 0)
    apply_result(health, failed, plan)
    apply_result(health, failed, plan)
    assert (health["Status"], health["FailingStreak"]) == ("unhealthy", 2)
    for _ in range(5):
        apply_result(health, dict(failed, ExitCode=0), plan)
    assert (health["Status"], health["FailingStreak"], len(health["Log"])) == ("healthy", 0, 5)


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (200_000_000, "200ms"), (30_000_000_000, "30s"), (1_500_000_000, "1.5s"),
    (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h0m0s"), (1_000, "1µs"), (1_500_000, "1.5ms"), (5, "5ns"),
])
def test_go_duration(ns, text):
    assert go_duration(ns) == text
