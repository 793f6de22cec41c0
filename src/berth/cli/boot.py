"""`berth system restart-policies`: run at boot (berth-restart.service) so containers come back
as they would when dockerd starts. Prints the name of each container it started."""

import sys

from berth.cli.flags import Command, help_text, parse
from berth.engine.lifecycle import start_by_policy

RESTART_POLICIES = Command("system restart-policies", "berth system restart-policies",
                           "Start the containers whose restart policy says they should be running "
                           "(run at boot by berth-restart.service)", [], max_args=0)


def cmd_restart_policies(engine, argv) -> int:
    opts, _ = parse(RESTART_POLICIES, argv)
    if opts.help:
        sys.stdout.write(help_text(RESTART_POLICIES))
        return 0
    for record in start_by_policy(engine):
        print(record["Name"].lstrip("/"))
    return 0
