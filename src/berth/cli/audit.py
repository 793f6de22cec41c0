"""`berth audit [OPTIONS] [CONTAINER...]`: each container's isolation report (berth.engine.audit) as
text, JSON or a Go template, and `--strict` against a policy file."""

import sys

from berth.cli.flags import BOOL, STRING, Command, Flag, help_text, parse
from berth.cli.output import print_json, render_one, render_table_text
from berth.engine.audit import audit_containers
from berth.engine.audit_policy import Policy, load_policy

AUDIT = Command("audit", "berth audit [OPTIONS] [CONTAINER...]",
                "Show where containers stand on the isolation ladder, each weakening with the flag that caused it",
                [Flag("format", "f", STRING, None, "Format output: \"json\" (a JSON array), or a Go template run on "
                                                   "each container's report"),
                 Flag("policy", None, STRING, None, "Check each container against this policy file (JSON)"),
                 Flag("strict", None, BOOL, False, "Exit with status 1 when a container is weaker than the policy "
                                                   "(without --policy: when it has any weakening)")])

ROWS = "table {{.Area}}\t{{.Setting}}\t{{.Status}}\t{{.Flag}}"
HEADER = {"Area": "AREA", "Setting": "SETTING", "Status": "STATUS", "Flag": "FLAG"}
# column titles of `--format 'table ...'` templates over whole reports (docker's: the field, upper-cased)
REPORT_HEADER = {"Id": "CONTAINER ID", "Name": "NAME", "Image": "IMAGE", "Checks": "CHECKS",
                 "Weakenings": "WEAKENINGS", "Violations": "VIOLATIONS",
                 "Ladder": {key: key.upper() for key in ("Network", "NetworkMode", "IPC", "PID", "UTS", "User",
                                                         "Root", "Uid", "Userns", "Privileged", "CapAdd", "CapDrop",
                                                         "Seccomp", "AppArmor", "NoNewPrivileges", "Devices",
                                                         "Memory", "Cpus", "PidsLimit", "ReadonlyRootfs",
                                                         "HostMounts")}}


def cmd_audit(engine, argv: list[str]) -> int:
    opts, args = parse(AUDIT, argv)
    if opts.help:
        sys.stdout.write(help_text(AUDIT))
        return 0
    policy = load_policy(opts.policy) if opts.policy else Policy.strictest() if opts.strict else None
    reports, missing = audit_containers(engine, args, policy)
    if opts.format == "json":
        print_json(reports)
    elif opts.format and opts.format.startswith("table") and opts.format.strip() != "table":
        for report in reports:  # a field no report has is an error, as on docker's structs (not "<no value>")
            render_one(opts.format[len("table"):].strip(" ").replace("\\t", "\t"), report)
        sys.stdout.write(render_table_text(opts.format, reports, REPORT_HEADER))
    elif opts.format and opts.format != "table":
        for report in reports:
            sys.stdout.write(render_one(opts.format, report) + "\n")
    else:
        sys.stdout.write("\n".join(text_report(report, policy is not None) for report in reports))
    for error in missing:
        print(f"Error: {error}", file=sys.stderr)
    violating = [r for r in reports if r["Violations"]]
    if violating:
        count = sum(len(r["Violations"]) for r in violating)
        print(f"{count} policy violation{'s' * (count != 1)} in {len(violating)} of {len(reports)} "
              f"container{'s' * (len(reports) != 1)}", file=sys.stderr)
    return 1 if missing or opts.strict and violating else 0


def printable(value):
    """A report's strings with control characters shown as \\xNN: an image's USER or a path can
    hold escape sequences that would rewrite the lines of an audit on a terminal."""
    if isinstance(value, str):
        return "".join(c if c >= " " and c != "\x7f" else f"\\x{ord(c):02x}" for c in value)
    if isinstance(value, dict):
        return {k: printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value


def text_report(report: dict, checked: bool) -> str:
    """One container's report as text: its checks as a table, then each weakening with what
    it exposes and the stronger setting, then the policy's violations when one was applied."""
    report = printable(report)
    weakenings = report["Weakenings"]
    lines = [f"{report['Name']} ({report['Id'][:12]}), image {report['Image']}: "
             f"{len(weakenings)} weakening{'s' * (len(weakenings) != 1)}"]
    lines += ["  " + line for line in render_table_text(ROWS, report["Checks"], HEADER).splitlines()]
    if weakenings:
        lines.append("  Weakenings:")
        for w in weakenings:
            lines.append(f"    {w['Flag']}: {w['Why']}")
            if w["Stronger"]:
                lines.append(f"      stronger: {w['Stronger']}")
    if checked:
        lines.append("  Policy violations:" if report["Violations"] else "  Policy: no violation")
        lines += [f"    {v}" for v in report["Violations"]]
    return "\n".join(lines) + "\n"
