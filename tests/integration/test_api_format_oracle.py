"""The docker CLI as an oracle for berth's Go templates: `docker inspect --format T` renders on
the client, from the JSON berth's API serves; `berth inspect --format T` renders in berth's own
template engine from the same record. The two must agree, template by template."""

CONTAINER_TEMPLATES = [
    "{{.Name}}", "{{.ID}}", "{{.Id}}", "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}",
    "{{.Config.Image}}", "{{json .Config.Cmd}}", "{{.Config.Cmd}}", "{{json .Config.Env}}",
    "{{range .Config.Env}}{{.}},{{end}}", "{{.HostConfig.RestartPolicy}}", "{{.HostConfig.RestartPolicy.Name}}",
    "{{.HostConfig.Memory}} {{.HostConfig.NanoCPUs}} {{.HostConfig.CPUShares}}", "{{json .HostConfig.PortBindings}}",
    "{{.HostConfig.PortBindings}}", "{{range $p, $conf := .NetworkSettings.Ports}}{{$p}} -> "
    "{{(index $conf 0).HostPort}};{{end}}", "{{.NetworkSettings.IPAddress}}",
    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.Gateway}}{{end}}", "{{json .Mounts}}",
    "{{range .Mounts}}{{.Destination}}:{{.RW}} {{end}}", '{{index .Config.Labels "tier"}}', "{{.Config.Labels}}",
    "{{len .Config.Env}}", '{{join .Config.Cmd " "}}', "{{upper .Name}} {{lower .Config.Image}}",
    "{{.Config.Healthcheck.Test}}", "{{.HostConfig.LogConfig}}", "{{.Config.ExposedPorts}}",
    '{{printf "%s|%d" .Name .RestartCount}}', "{{.GraphDriver.Name}}", "{{.HostConfig.Binds}}", "{{.Path}} {{.Args}}",
    "{{.Created}}", "{{json .State}}", "{{.HostConfig.CapAdd}} {{.HostConfig.Privileged}}",
    '{{if .State.Running}}up{{else}}down{{end}}', "{{.Config.Tty}} {{.Config.OpenStdin}} {{.Config.WorkingDir}}",
    "{{json .HostConfig.Ulimits}}", '{{split .Config.Image ":"}}', "{{.HostConfig.NetworkMode}}",
]
IMAGE_TEMPLATES = [
    "{{.Id}}", "{{.ID}}", "{{.RepoTags}}", "{{json .Config.Cmd}}", "{{.RootFS.Type}} {{len .RootFS.Layers}}",
    "{{.Architecture}}/{{.Os}}", "{{.Size}}", "{{json .Config}}", "{{.Config.Env}}", "{{.Config}}",
]


def test_docker_clis_rendering_of_our_json_equals_berths_own(api):
    api.berth.ok("run", "-d", "--name", "oracle", "-p", "127.0.0.1::80", "-l", "tier=front", "-e", "A=1",
                 "-e", "B=two words", "--restart", "on-failure:3", "-m", "64m", "--cpus", "0.5", "--cpu-shares", "512",
                 "-v", "/usr/share:/host-share:ro", "--health-cmd", "true", "--cap-add", "NET_ADMIN", "--ulimit",
                 "nofile=1024:2048", "-w", "/tmp", "busybox", "sleep", "600")
    differ = []
    for kind, ref, templates in (("container", "oracle", CONTAINER_TEMPLATES), ("image", "busybox", IMAGE_TEMPLATES)):
        for template in templates:
            ours = api.berth.ok("inspect", "--type", kind, "--format", template, ref)
            theirs = api.docker_ok("inspect", "--type", kind, "--format", template, ref)
            if ours != theirs:
                differ.append(f"{kind} {template}\n  berth:  {ours!r}\n  docker: {theirs!r}")
    assert len(CONTAINER_TEMPLATES) + len(IMAGE_TEMPLATES) >= 20
    assert differ == [], "\n".join(differ)
    api.berth.ok("rm", "-f", "oracle")


LIST_TEMPLATES = [
    ("ps", "{{.ID}} {{.Image}} {{.Command}} {{.Names}}"), ("ps", "{{.Ports}}"), ("ps", "{{.Labels}}"),
    ("ps", '{{.Label "tier"}}'), ("ps", "{{.Mounts}} {{.Networks}} {{.State}}"), ("ps", "{{json .Names}}"),
    ("images", "{{.Repository}}:{{.Tag}} {{.ID}}"), ("images", "{{.Size}}"),
]


def test_list_rows_as_the_docker_cli_lays_them_out(api):
    api.berth.ok("run", "-d", "--name", "rows", "-p", "127.0.0.1:18081:80", "-l", "tier=back", "-v",
                 "/usr/share:/share:ro", "busybox", "sleep", "600")
    differ = []
    for command, template in LIST_TEMPLATES:
        ours = api.berth.ok(command, "--format", template)
        theirs = api.docker_ok(command, "--format", template)
        if ours != theirs:
            differ.append(f"{command} {template}\n  berth:  {ours!r}\n  docker: {theirs!r}")
    assert differ == [], "\n".join(differ)
    api.berth.ok("rm", "-f", "rows")
