"""The health prober of one run of a container (docker's health monitor goroutine): a
process of its own, forked by the container's supervisor once the container runs
(Supervisor.spawn_prober), that execs a fresh interpreter importing only what an exec
needs. It keeps the schedule and ends with the run (its pid 1 watched through a pidfd the
supervisor opened while it was that pid's parent); the engine (engine.health) runs each
probe, from the container's probe launcher (runtime.probe), and records it.

Apart from the supervisor so that the lean monitor stays lean for every container: only a
container with a health check pays for the prober's interpreter."""

import gc
import os
import select

from berth import fastjson
from berth.monitor.lean import set_comm
from berth.monitor.supervisor import engine_from


def main(plan_text: str) -> None:
    """Probe on schedule until the run ends or there is nothing more to probe."""
    try:
        plan = fastjson.loads(plan_text)
        set_comm("berth-health")
        prober = engine_from(plan).health_prober(plan["id"], plan["pid"])
        ended = select.poll()
        ended.register(plan["run"], select.POLLIN)
        delay = prober.delay()
        try:
            while delay is not None and not ended.poll(delay * 1000):
                if not prober.check():
                    break
                # What lives on is kept out of the collector's walks, which write every object
                # they visit: fewer of our pages are written, fewer stop being shared.
                gc.freeze()
                delay = prober.delay()
        finally:
            prober.close()
    finally:
        os._exit(0)
