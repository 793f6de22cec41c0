"""The service's entry: its own arguments (what `berth system service` passes on), the engine
for the given roots, then serve until idle."""

import sys

from berth.errors import BerthError, host_failure
from berth.fs import set_process_umask


def parse(argv: list[str]) -> dict:
    opts = {"root": None, "run_root": None, "config_file": None, "time": 5.0, "uri": None, "overrides": {}}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--root", "--run-root", "--config-file", "--time", "--override"):
            if i + 1 >= len(argv):
                raise BerthError(f"flag needs an argument: {arg}")
            value = argv[i + 1]
            if arg == "--time":
                try:
                    opts["time"] = float(value)
                except ValueError:
                    raise BerthError(f'invalid argument "{value}" for "-t, --time" flag: not a number') from None
            elif arg == "--override":  # an engine setting given as a global flag: name=JSON
                import json  # lazy: only overrides

                name, _, encoded = value.partition("=")
                opts["overrides"][name] = json.loads(encoded)
            else:
                opts[arg[2:].replace("-", "_")] = value
            i += 2
        elif opts["uri"] is None and not arg.startswith("-"):
            opts["uri"] = arg
            i += 1
        else:
            raise BerthError(f"unknown argument: {arg}")
    return opts


def entry(argv: list[str]) -> None:
    set_process_umask()
    try:
        opts = parse(argv)
        from berth.api.server import serve
        from berth.engine.containers import Engine
        from berth.paths import Paths

        engine = Engine(Paths(opts["root"], opts["run_root"]), opts["config_file"], opts["overrides"])
        serve(engine, opts["uri"], opts["time"])
    except BerthError as err:
        print(f"Error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as err:
        print(f"Error: {host_failure(err) or err}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass
