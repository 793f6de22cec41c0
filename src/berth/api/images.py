"""Image endpoints: list, inspect, history, tag, remove, prune, commit, save (get), load and
import (create?fromSrc); pull (create?fromImage), push and search need the registry client."""

from berth.api.http import Response, Stream, json_lines
from berth.engine import images
from berth.errors import BerthError, InvalidArgument, NotImplementedYet

TAR = "application/x-tar"


def summary_json(req, summary, shared: bool = False) -> dict:
    """docker's ImageSummary; SharedSize and Containers are -1 unless measured (system df)."""
    shaped = {
        "Containers": -1 if summary.containers is None else summary.containers,
        "Created": int(summary.created),
        "Id": summary.id,
        "Labels": summary.labels,
        "ParentId": "",
        "RepoDigests": [f"{repo}@{digest}" for repo, digest in summary.repo_digests.items()],
        "RepoTags": [f"{repo}:{tag}" for repo, tag in summary.repo_tags if tag != "<none>"],
        "SharedSize": summary.shared_size if shared else -1,
        "Size": summary.size,
    }
    if req.older_than("1.44"):
        shaped["VirtualSize"] = summary.size
    return shaped


def list_images(req) -> Response:
    shared = req.flag("shared-size")
    return Response([summary_json(req, s, shared) for s in images.list_images(req.engine, req.filter_args(),
                                                                                 all_images=req.flag("all"))])


def inspect_image(req) -> Response:
    shaped = images.inspect_image(req.engine, req.params["name"])
    if req.older_than("1.44"):
        shaped["VirtualSize"] = shaped["Size"]
    return Response(shaped)


def history(req) -> Response:
    return Response([{"Comment": e.comment, "Created": int(e.created), "CreatedBy": e.created_by, "Id": e.id,
                      "Size": e.size, "Tags": e.tags} for e in images.history(req.engine, req.params["name"])])


def _reference(repo: str | None, tag: str | None) -> str | None:
    """?repo and ?tag as one name to give an image (None without a repo)."""
    if not repo:
        return None
    return images.tag_name(f"{repo}:{tag}" if tag else repo)


def tag(req) -> Response:
    name = _reference(req.arg("repo"), req.arg("tag"))
    if name is None:
        raise InvalidArgument("repository name must have at least one component")
    images.tag(req.engine, req.params["name"], name)
    return Response(status=201)


def remove(req) -> Response:
    """?noprune keeps a built image's untagged parents."""
    return Response(list(images.remove(req.engine, req.params["name"], req.flag("force"), not req.flag("noprune"))))


def prune(req) -> Response:
    from berth.filters import PRUNE_FILTERS, prune_filters  # lazy: only prune

    filters = prune_filters(req.filter_args(), PRUNE_FILTERS + ("dangling",))
    return Response(images.prune(req.engine, False, filters))


def commit(req) -> Response:
    from berth.engine.commit import commit as commit_container  # lazy: only commit walks layers

    container = req.arg("container") or ""
    record = req.engine.get(container)
    name = _reference(req.arg("repo"), req.arg("tag"))
    image_id = commit_container(req.engine, record, name, req.arg("author") or "", req.arg("comment") or "",
                                req.args("changes"), req.flag("pause", True), req.json_object())
    return Response({"Id": image_id}, status=201)


# -- archives -----------------------------------------------------------------------------------

def save_one(req) -> Stream:
    return _save(req, [req.params["name"]])


def save(req) -> Stream:
    return _save(req, req.args("names"))


def _save(req, refs: list[str]) -> Stream:
    if not refs:
        raise InvalidArgument("no images to save: name at least one")
    archive = images.save(req.engine, refs)  # a missing image fails here, before any byte is sent
    return Stream(archive.chunks(), TAR)


def load(req) -> Response:
    """The archive is read as it arrives; the answer is dockerd's JSON stream of "stream" lines
    (?quiet only silences progress, which berth does not send)."""
    messages = []
    for image in images.load(req.engine, req.stream()):
        for name, previous in image.replaced:
            messages.append(f"The image {name} already exists, renaming the old one with ID {previous} "
                            "to empty string\n")
        messages += [f"Loaded image: {name}\n" for name in image.names] or [f"Loaded image ID: {image.id}\n"]
    return Response(b"".join(json_lines({"stream": m} for m in messages)), content_type="application/json")


def create(req):
    """POST /images/create: ?fromSrc imports a tar (the body with fromSrc=-), ?fromImage pulls."""
    if req.arg("fromSrc") is not None:
        return _import(req)
    if req.arg("fromImage"):
        return _pull(req)
    raise InvalidArgument("either fromImage or fromSrc is required")


def _import(req) -> Response:
    if req.arg("fromSrc") != "-":
        raise NotImplementedYet("importing from a URL is not supported yet: download the file and import it "
                                "from the request body (fromSrc=-)")
    name = _reference(req.arg("repo"), req.arg("tag"))
    image_id = images.import_image(req.engine, req.stream(), name, req.args("changes"), req.arg("message") or None)
    return Response(b"".join(json_lines([{"status": image_id}])), content_type="application/json")


def _pull(req):
    from berth.engine import pull  # lazy: only pull

    ref, tag_or_digest = req.arg("fromImage"), req.arg("tag")
    # docker's API: no tag, in ?tag or in the name, pulls every tag of the repository
    all_tags = not tag_or_digest and "@" not in ref and ":" not in ref.rpartition("/")[2]
    if tag_or_digest:
        ref += ("@" if tag_or_digest.startswith("sha256:") else ":") + tag_or_digest
    return _progress(pull.pull(req.engine, ref, req.arg("platform") or None, all_tags))


def push(req):
    from berth.engine import pull  # lazy: only push

    ref = req.params["name"] + (f":{req.arg('tag')}" if req.arg("tag") else "")
    return _progress(pull.push(req.engine, ref))


def _progress(messages) -> Stream:
    """A registry transfer's progress as dockerd streams it: an error before the first message
    is the request's error; one after it ends the stream as docker's {"error", "errorDetail"}."""
    first = next(messages, None)

    def rest():
        if first is not None:
            yield first
        try:
            yield from messages
        except BerthError as err:
            yield {"errorDetail": {"message": str(err)}, "error": str(err)}

    return Stream(json_lines(rest()))


def search(req) -> Response:
    raise NotImplementedYet("searching a registry is not supported by berth (docker's search asks Docker Hub's "
                            "search service, which this engine does not talk to)")


ROUTES = [
    ("GET", "/images/json", list_images),
    ("GET", "/images/search", search),
    ("GET", "/images/get", save),
    ("POST", "/images/load", load),
    ("POST", "/images/prune", prune),
    ("POST", "/images/create", create),
    ("POST", "/commit", commit),
    ("GET", "/images/{name:path}/json", inspect_image),
    ("GET", "/images/{name:path}/history", history),
    ("GET", "/images/{name:path}/get", save_one),
    ("POST", "/images/{name:path}/tag", tag),
    ("POST", "/images/{name:path}/push", push),
    ("DELETE", "/images/{name:path}", remove),
]
