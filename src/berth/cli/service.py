"""`berth system service [--time SECONDS] [URI]`: serve the Docker Engine API (podman's verb).
The service is a front door of its own (berth.api); this command only hands over to it, in a
fresh interpreter, so nothing of the API's is ever imported by the CLI."""

import json
import os
import sys

from berth.cli.flags import INT, Command, Flag, help_text, parse

SERVICE = Command("system service", "berth system service [OPTIONS] [URI]",
                  "Serve the Docker Engine API on URI (default unix://<run-root>/berth.sock; or tcp://127.0.0.1:PORT)",
                  [Flag("time", "t", INT, 5, "Seconds without a connection before the service ends (0: never)")],
                  max_args=1)


def cmd_service(engine, argv) -> int:
    opts, args = parse(SERVICE, argv)
    if opts.help:
        sys.stdout.write(help_text(SERVICE))
        return 0
    forward = ["--root", engine.paths.root, "--run-root", engine.paths.run_root, "--time", str(opts.time)]
    if engine.config_file:
        forward += ["--config-file", engine.config_file]
    for name, value in engine.overrides.items():
        forward += ["--override", f"{name}={json.dumps(value)}"]
    # the same sources this CLI runs (an installed venv or a checkout), without the user's environment
    code = f"import sys; sys.path[:0] = {sys.path!r}; from berth.api.main import entry; entry(sys.argv[1:])"
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-I", "-c", code, *forward, *args])
