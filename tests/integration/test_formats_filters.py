"""Output formats, filters and inspect templates as docker 28's CLI prints them: each expected
string below was recorded from `docker` 28 on this machine's dockerd (busybox loaded), with
that run's IDs, names and times put back as the test's own."""

import json
import re

GO_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \S+"  # time.Time.String() of a whole second

# `docker ps --format json` of a created container (docker 28 on dockerd 20.10)
PS_JSON_KEYS = ["Command", "CreatedAt", "ID", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
                "Platform", "Ports", "RunningFor", "Size", "State", "Status"]
IMAGES_JSON_KEYS = ["Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size",
                    "Tag", "UniqueSize", "VirtualSize"]
STATS_JSON_KEYS = ["BlockIO", "CPUPerc", "Container", "ID", "MemPerc", "MemUsage", "Name", "NetIO", "PIDs"]


def names(b, *args: str) -> list[str]:
    return b.ok("ps", "-a", "--format", "{{.Names}}", *args).split()


def test_ps_label_filters_must_all_hold_and_names_match_with_their_slash(busybox):
    busybox.ok("create", "--name", "web", "--label", "app=demo", "--label", "tier=web", "busybox", "true")
    busybox.ok("create", "--name", "worker", "--label", "app=demo", "--label", "tier=worker", "busybox", "true")
    busybox.ok("create", "--name", "db", "--label", "app=other", "busybox", "true")
    # docker: label values are AND'ed (the issue's `ps -q ... | xargs rm -f` removed the wrong ones)
    assert names(busybox, "--filter", "label=app=demo", "--filter", "label=tier=worker") == ["worker"]
    assert names(busybox, "--filter", "label=app", "--filter", "label=tier=web") == ["web"]
    # other keys: values are alternatives, keys AND'ed
    assert names(busybox, "--filter", "name=web", "--filter", "name=db") == ["db", "web"]
    assert names(busybox, "--filter", "name=web", "--filter", "label=app=other") == []
    # docker matches the name with and without its leading slash
    assert names(busybox, "-f", "name=^/db$") == ["db"]
    assert names(busybox, "-f", "name=^db$") == ["db"]
    busybox.fails(1, "ps", "--filter", "foo=bar", says="invalid filter 'foo'")
    busybox.fails(1, "ps", "--filter", "status=bogus", says="invalid filter 'status=bogus'")
    busybox.fails(1, "ps", "--filter", "exited=abc", says='strconv.Atoi: parsing "abc": invalid syntax')


def test_ps_volume_network_and_port_filters(busybox):
    busybox.ok("create", "--name", "withvol", "-v", "fmtvol:/data", "--expose", "80", "busybox", "true")
    busybox.ok("create", "--name", "isolated", "--network", "none", "busybox", "true")
    assert names(busybox, "--filter", "volume=/data") == ["withvol"]
    assert names(busybox, "--filter", "volume=fmtvol") == ["withvol"]
    assert names(busybox, "--filter", "network=none") == ["isolated"]
    assert names(busybox, "--filter", "network=bridge") == ["withvol"]  # docker: a created container too
    assert names(busybox, "--filter", "expose=80/tcp") == ["withvol"]
    assert names(busybox, "--filter", "expose=79-81") == ["withvol"]
    assert names(busybox, "--filter", "publish=80") == []
    assert names(busybox, "--filter", "is-task=true") == []


def test_ps_format_json_and_docker_placeholders(busybox):
    busybox.ok("create", "--name", "h14fmt-c", "--label", "app=demo", "--label", "com.example.x_y-z=1",
               "-v", "h14fmt-vol:/data", "busybox", "sleep", "1000")
    [line] = busybox.ok("ps", "-a", "--format", "json").splitlines()  # docker 23+: one object per line
    row = json.loads(line)
    assert list(row) == PS_JSON_KEYS
    assert {k: row[k] for k in ("Command", "Image", "Labels", "LocalVolumes", "Mounts", "Names", "Networks",
                                "Platform", "Ports", "Size", "State", "Status")} == {
        "Command": '"sleep 1000"', "Image": "busybox", "Labels": "app=demo,com.example.x_y-z=1",
        "LocalVolumes": "1", "Mounts": "h14fmt-vol", "Names": "h14fmt-c", "Networks": "bridge", "Platform": None,
        "Ports": "", "Size": "0B", "State": "created", "Status": "Created"}  # json alone measures no size
    assert re.fullmatch(GO_TIME, row["CreatedAt"]), row["CreatedAt"]
    # {{json .}} reads .Size, so docker measures it
    assert json.loads(busybox.ok("ps", "-a", "--format", "{{json .}}"))["Size"].startswith("0B (virtual ")
    out = busybox.ok("ps", "-a", "--format", '{{.Label "app"}}|{{.Label "nope"}}|{{.LocalVolumes}}|{{.Mounts}}|'
                                             "{{.Networks}}|{{.State}}|{{.Size}}")
    assert re.fullmatch(r"demo\|\|1\|h14fmt-vol\|bridge\|created\|0B \(virtual [\d.]+[kM]B\)\n", out), out
    # a header for .Label is the key's last dotted part, - and _ as spaces
    table = busybox.ok("ps", "-a", "--format", 'table {{.Names}}\t{{.Label "com.example.x_y-z"}}')
    assert table.splitlines() == ["NAMES      x y z", "h14fmt-c   1"]
    # "table" alone is the default table
    assert busybox.ok("ps", "-a", "--format", "table").splitlines()[0].split() == [
        "CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    full_id = busybox.ok("ps", "-aq", "--no-trunc").strip()
    assert len(full_id) == 64
    assert busybox.ok("ps", "-n", "1", "--no-trunc", "--format", "{{.ID}} {{.Command}}") == \
        f'{full_id} "sleep 1000"\n'
    # docker: an image given by ID shows as the short ID, a full name in its familiar form
    image_id = busybox.ok("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    busybox.ok("create", "--name", "by-id", image_id, "true")
    busybox.ok("create", "--name", "by-name", "docker.io/library/busybox:latest", "true")
    images = busybox.ok("ps", "-a", "--filter", "name=by-", "--format", "{{.Names}} {{.Image}}").splitlines()
    assert sorted(images) == ["by-id " + image_id[7:19], "by-name busybox:latest"]
    images = busybox.ok("ps", "-a", "--no-trunc", "--filter", "name=by-", "--format", "{{.Names}} {{.Image}}")
    assert sorted(images.splitlines()) == ["by-id " + image_id, "by-name docker.io/library/busybox:latest"]
    busybox.ok("rm", "by-id", "by-name")
    busybox.ok("create", "--name", "runs", "busybox", "sleep", "60")
    busybox.ok("start", "runs")
    assert busybox.ok("ps", "-n", "0", "--format", "{{.Names}}") == "runs\n"  # docker: -n 0 is plain ps
    busybox.ok("rm", "-f", "runs")
    result = busybox("ps", "-aq", "--format", "table")
    assert result.stdout == full_id[:12] + "\n"
    assert result.stderr == "WARNING: Ignoring custom format, because both --format and --quiet are set.\n"


def test_images_format_json_and_filters(busybox):
    busybox.ok("tag", "busybox", "example.com/team/tool:1")
    lines = busybox.ok("images", "--format", "{{json .}}").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [list(r) for r in rows] == [IMAGES_JSON_KEYS] * 2  # nothing internal leaks
    assert '"Digest":"\\u003cnone\\u003e"' in lines[0]  # docker's MarshalJSON escapes HTML
    assert (rows[0]["Containers"], rows[0]["SharedSize"], rows[0]["UniqueSize"]) == ("N/A", "N/A", "N/A")
    assert re.fullmatch(r"\d\.\d{3}MB", rows[0]["VirtualSize"])  # go-units HumanSize: 4 digits
    assert re.fullmatch(GO_TIME, rows[0]["CreatedAt"])
    assert busybox.ok("images", "--format", "json") == "\n".join(lines) + "\n"

    def repos(*args: str) -> list[str]:
        return busybox.ok("images", "--format", "{{.Repository}}:{{.Tag}}", *args).split()

    assert repos("--filter", "reference=*/team/*") == ["example.com/team/tool:1"]
    assert repos("--filter", "reference=busy*", "--filter", "reference=nomatch") == ["busybox:latest"]
    assert repos("busybox") == ["busybox:latest"]
    assert repos("--filter", "dangling=false", "--filter", "until=2000-01-01") == []
    assert repos("--filter", "label=nope") == []
    assert sorted(repos("--filter", "until=2099-01-01")) == ["busybox:latest", "example.com/team/tool:1"]
    assert repos("--filter", "since=busybox") == []
    busybox.fails(1, "images", "--filter", "dangling=maybe", says="invalid filter 'dangling=maybe'")
    busybox.fails(1, "images", "--filter", "foo=bar", says="invalid filter 'foo'")
    busybox.fails(1, "images", "--filter", "before=nosuch", says="No such image: nosuch:latest")
    digests = busybox.ok("images", "--digests", "--no-trunc", "--format", "table").splitlines()
    assert digests[0].split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
    assert re.search(r" <none>\s+sha256:[0-9a-f]{64} ", digests[1]), digests[1]


def test_inspect_templates_run_on_go_structs_first(busybox):
    cid = busybox.ok("create", "--name", "h14fmt-r", "--restart", "unless-stopped", "--cpus", "1.5",
                     "--cpu-shares", "512", "--ulimit", "nofile=100:200", "busybox", "true").strip()

    def fmt(template: str, *args: str) -> str:
        return busybox.ok("inspect", *args, "-f", template, "h14fmt-r").rstrip("\n")

    # docker 28 on dockerd, the same container:
    assert fmt("{{.HostConfig.RestartPolicy}}|{{.HostConfig.NanoCPUs}} {{.HostConfig.CPUShares}}|"
               "{{.HostConfig.LogConfig}}|{{json .HostConfig.RestartPolicy}}") == \
        '{unless-stopped 0}|1500000000 512|{json-file map[]}|{"Name":"unless-stopped","MaximumRetryCount":0}'
    assert fmt("{{.ID}}") == cid
    assert fmt("{{.State}}") == \
        "{created false false false false false 0 0  0001-01-01T00:00:00Z 0001-01-01T00:00:00Z <nil>}"
    assert fmt("{{.HostConfig.Ulimits}} {{json .HostConfig.Ulimits}}") == \
        '[nofile=100:200] [{"Name":"nofile","Hard":200,"Soft":100}]'
    assert fmt("{{json .Config.Env}} {{.Config.Env}} {{.Config.Volumes}} {{.Config.Entrypoint}}") == \
        "null [] map[] []"
    # a template the struct cannot run runs on the JSON maps, as docker's CLI falls back
    assert fmt("{{.Id}} {{.HostConfig.RestartPolicy}}") == f"{cid} map[MaximumRetryCount:0 Name:unless-stopped]"
    busybox.fails(1, "inspect", "-f", "{{.Node}}", "h14fmt-r", says='map has no entry for key "Node"')
    # docker goes on past an object the template fails on, and reports it at the end
    result = busybox("inspect", "-f", "{{.State.Status}}", "h14fmt-r", "busybox", "h14fmt-r")
    assert (result.returncode, result.stdout) == (1, "created\ncreated\n")
    assert 'map has no entry for key "State"' in result.stderr
    assert fmt("{{.SizeRw}} {{.SizeRootFs}}", "-s").split()[0] == "0"
    assert int(fmt("{{.SizeRootFs}}", "--size")) > 0
    assert "SizeRw" not in fmt("{{json .}}")
    image_id = busybox.ok("image", "inspect", "-f", "{{.ID}}", "busybox").strip()
    assert image_id == busybox.ok("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    assert busybox.ok("image", "inspect", "-f", "{{.RootFS.Type}}", "busybox") == "layers\n"
    # time.Time fields print as Go's Time.String() and stay RFC 3339 in json
    assert busybox.ok("image", "inspect", "-f", "{{.Metadata}} {{json .Metadata}}", "busybox") == \
        '{0001-01-01 00:00:00 +0000 UTC} {"LastTagTime":"0001-01-01T00:00:00Z"}\n'
    network_id = busybox.ok("network", "inspect", "-f", "{{.ID}}", "none").strip()
    assert network_id == busybox.ok("network", "inspect", "-f", "{{.Id}}", "none").strip()
    busybox.ok("volume", "create", "fmtvol")
    assert busybox.ok("volume", "inspect", "-f", "{{.Name}} {{.Labels}} {{json .Labels}}", "fmtvol") == \
        "fmtvol map[] null\n"
    assert busybox.ok("inspect", "--type", "image", "-f", "{{.ID}}", "busybox").strip() == image_id
    busybox.fails(1, "inspect", "--type", "container", "busybox", says="No such container: busybox")
    busybox.fails(1, "inspect", "--type", "foo", "x", says='unknown type: "foo": must be one of "config"')
    # time.Duration prints as Go's Duration.String(), stays nanoseconds (omitted when 0) in json
    busybox.ok("create", "--name", "checked", "--health-cmd", "true", "--health-interval", "1s", "busybox", "true")
    assert busybox.ok("inspect", "-f", "{{.Config.Healthcheck}} {{json .Config.Healthcheck}}", "checked") == \
        '{[CMD-SHELL true] 1s 0s 0s 0s 0} {"Test":["CMD-SHELL","true"],"Interval":1000000000}\n'
    # HostConfig.Ulimits is [] and Config.Env null when none, as docker prints them
    plain = busybox.ok("create", "busybox", "true").strip()
    [other] = json.loads(busybox.ok("inspect", plain))
    assert other["HostConfig"]["Ulimits"] == [] and other["Config"]["Env"] is None


def test_stats_format_json(busybox):
    cid = busybox.ok("create", "--name", "h14fmt-c", "busybox", "true").strip()
    row = json.loads(busybox.ok("stats", "--no-stream", "--format", "json", "h14fmt-c"))
    assert row == {"BlockIO": "0B / 0B", "CPUPerc": "0.00%", "Container": "h14fmt-c", "ID": cid[:12],
                   "MemPerc": "0.00%", "MemUsage": "0B / 0B", "Name": "h14fmt-c", "NetIO": "0B / 0B", "PIDs": "0"}
    out = busybox.ok("stats", "--no-stream", "--no-trunc", "--format",
                     "{{.Container}}|{{.Name}}|{{.ID}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.NetIO}}|"
                     "{{.BlockIO}}|{{.PIDs}}", "h14fmt-c")
    assert out == f"h14fmt-c|h14fmt-c|{cid}|0.00%|0B / 0B|0.00%|0B / 0B|0B / 0B|0\n"


def test_stop_timeout_and_the_deprecated_time(busybox):
    busybox.ok("run", "-d", "--name", "st", "busybox", "sleep", "60")
    assert busybox.ok("stop", "--timeout", "0", "st", timeout=20) == "st\n"
    busybox.ok("start", "st")
    result = busybox("restart", "--time", "0", "st", timeout=20)
    assert result.returncode == 0 and result.stdout == "st\n"
    assert result.stderr == "Flag --time has been deprecated, use --timeout instead\n"
    assert busybox.ok("stop", "-t", "0", "st", timeout=20) == "st\n"


def test_prune_and_network_filters(busybox):
    busybox.ok("create", "--name", "keep", "--label", "keep=yes", "busybox", "true")
    busybox.ok("create", "--name", "drop", "--label", "tier=x", "busybox", "true")
    busybox.fails(1, "container", "prune", "-f", "--filter", "until=bogus",
                  says='failed to parse value as time or duration: "bogus"')
    busybox.fails(1, "system", "prune", "-f", "--filter", "foo=bar", says="invalid filter 'foo'")
    busybox.fails(1, "system", "prune", "-f", "--volumes", "--filter", "until=1h",
                  says='The "until" filter is not supported with "--volumes"')
    busybox.fails(1, "image", "prune", "-f", "--filter", "dangling=maybe", says="invalid filter 'dangling=maybe'")
    busybox.ok("container", "prune", "-f", "--filter", "until=1000h")  # all created since: none pruned
    assert names(busybox) == ["drop", "keep"]
    busybox.ok("container", "prune", "-f", "--filter", "label!=keep")
    assert names(busybox) == ["keep"]
    busybox.ok("image", "prune", "-af", "--filter", "label=nope")
    assert busybox.ok("images", "-q") != ""
    assert busybox.ok("network", "ls", "--format", "{{.Name}}", "--filter", "type=builtin", "--filter",
                      "name=host", "--filter", "name=none").split() == ["host", "none"]
    assert busybox.ok("network", "ls", "-q", "--filter", "type=custom") == ""
    busybox.fails(1, "network", "ls", "--filter", "type=foo", says="invalid filter: 'type'='foo'")
    busybox.fails(1, "network", "ls", "--filter", "foo=bar", says="invalid filter 'foo'")


def test_bad_command_lines_exit_as_docker_28(busybox):
    # docker 28: "docker: 'docker stop' requires at least 1 argument\n\nUsage: ...\n\nRun '...' for more information"
    err = busybox.fails(1, "stop", says="'berth stop' requires at least 1 argument\n\nUsage:  berth stop [OPTIONS]")
    assert err.rstrip("\n").endswith("Run 'berth stop --help' for more information")
    busybox.fails(1, "restart", says="'berth restart' requires at least 1 argument")
    busybox.fails(1, "rename", "x", says="'berth rename' requires 2 arguments")
    busybox.fails(1, "port", says="'berth port' requires at least 1 and at most 2 arguments")
    busybox.fails(1, "images", "a", "b", says="'berth images' requires at most 1 argument")
    busybox.fails(1, "ps", "a", says="'berth ps' accepts no arguments")
    busybox.fails(125, "ps", "--filter", "foo",
                  says='invalid argument "foo" for "-f, --filter" flag: bad format of filter (expected name=value)')
    busybox.fails(125, "volume", "prune", "--filter", "foo", says='invalid argument "foo" for "--filter" flag')
    busybox.fails(1, "events", "--since", "bogus", says='failed to parse value as time or duration: "bogus"')
    busybox.ok("create", "--name", "quiet", "busybox", "true")
    busybox.fails(1, "logs", "--since", "bogus", "quiet",
                  says='invalid value for "since": failed to parse value as time or duration: "bogus"')


def test_json_rows_of_volume_ls_network_ls_history_and_df(busybox):
    busybox.ok("volume", "create", "--label", "a=b", "fmtvol")
    # docker 28: every placeholder of its volumeContext, sorted
    assert json.loads(busybox.ok("volume", "ls", "--format", "json")) == {
        "Availability": "N/A", "Driver": "local", "Group": "N/A", "Labels": "a=b", "Links": "N/A",
        "Mountpoint": json.loads(busybox.ok("volume", "inspect", "fmtvol"))[0]["Mountpoint"], "Name": "fmtvol",
        "Scope": "local", "Size": "N/A", "Status": "N/A"}
    row = json.loads(busybox.ok("network", "ls", "--format", "json", "--filter", "name=none"))
    assert list(row) == ["CreatedAt", "Driver", "ID", "IPv4", "IPv6", "Internal", "Labels", "Name", "Scope"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [+-]\d{4} \S+", row["CreatedAt"])
    [step] = busybox.ok("history", "--format", "json", "busybox").splitlines()
    step = json.loads(step)
    assert list(step) == ["Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", step["CreatedAt"])  # RFC 3339, seconds
    df = [json.loads(line) for line in busybox.ok("system", "df", "--format", "json").splitlines()]
    assert [line["Type"] for line in df] == ["Images", "Containers", "Local Volumes", "Build Cache"]
    # docker: a share in percent only where there is a size; go-units HumanSize (4 digits)
    assert df[1]["Reclaimable"] == "0B" and df[3]["Reclaimable"] == "0B"
    assert re.fullmatch(r"\d\.\d{3}MB", df[0]["Size"]) and df[0]["Reclaimable"].endswith("%)")


def test_template_errors_name_dockers_contexts(busybox):
    busybox.ok("run", "-d", "--name", "up", "busybox", "sleep", "60")
    # docker 28: each listing's context type, and its words for a template that fails
    for args, context in ((("images",), "*formatter.imageContext"), (("volume", "ls"), None),
                          (("network", "ls"), "*network.networkContext"),
                          (("history", "busybox"), "*image.historyContext"),
                          (("system", "df"), "*formatter.diskUsageImagesContext"),
                          (("stats", "--no-stream", "up"), "*container.statsContext")):
        if context is None:  # no volume to run the template on: nothing fails
            assert busybox.ok(*args, "--format", "{{.Nope}}") == ""
            continue
        busybox.fails(1, *args, "--format", "{{.Nope}}", says='template parsing error: template: :1:2: executing "" '
                      f"at <.Nope>: can't evaluate field Nope in type {context}")
    busybox.fails(1, "ps", "--format", "{{.Nope}}", says="failed to execute template: template: :1:2: executing "
                  '"" at <.Nope>: can\'t evaluate field Nope in type *formatter.ContainerContext')
    busybox.fails(1, "ps", "--format", "{{.Nope", says="failed to parse template: template: :1: unclosed action")
    # docker runs ps's template on an empty row first: it fails even when nothing is listed
    busybox.fails(1, "ps", "--filter", "name=nomatch", "--format", "{{.Nope}}",
                  says="failed to execute template: template: :1:2: executing")
    assert busybox.ok("ps", "--filter", "name=nomatch", "--format", '{{.Names}}{{.Label "x"}}{{json .}}') == ""
    busybox.fails(1, "images", "--format", "{{.Nope", says="template parsing error: template: :1: unclosed action")
    busybox.ok("stop", "-t", "0", "up", timeout=20)


def test_system_df_verbose_lists_containers_volumes_and_build_cache(busybox):
    busybox.ok("create", "--name", "user", "-v", "fmtvol:/data", "busybox", "true")
    text = busybox.ok("system", "df", "-v")
    # docker 28's sections, in its order and words
    assert [line for line in text.splitlines() if line.endswith(":") or line.startswith("Build cache")] == [
        "Images space usage:", "Containers space usage:", "Local Volumes space usage:", "Build cache usage: 0B"]
    lines = text.splitlines()
    containers = lines.index("Containers space usage:")
    assert lines[containers + 2].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "LOCAL", "VOLUMES", "SIZE",
                                             "CREATED", "STATUS", "NAMES"]
    assert lines[containers + 3].split()[3:5] == ["1", "0B"] and lines[containers + 3].endswith(" user")
    volumes = lines.index("Local Volumes space usage:")
    assert [lines[volumes + 2].split(), lines[volumes + 3].split()] == [["VOLUME", "NAME", "LINKS", "SIZE"],
                                                                        ["fmtvol", "1", "0B"]]
    assert lines[-1].split() == ["CACHE", "ID", "CACHE", "TYPE", "SIZE", "CREATED", "LAST", "USED", "USAGE", "SHARED"]
