"""docker's answer to a create whose image is not here: the reference as the user knows it
(`nosuch` -> `nosuch:latest`) in a NotFound of its own, which a front door recognises by type
to say "Unable to find image '...' locally" and pull it, as docker's CLI does."""

from berth.errors import BerthError, InvalidArgument, NotFound


class NoSuchImage(NotFound):
    """The image of a create is not in the store; `image` is its familiar reference."""

    def __init__(self, image: str):
        super().__init__(f"No such image: {image}")
        self.image = image


def no_such_image(ref: str) -> BerthError:
    """The error for `ref` not being here: NoSuchImage, or InvalidArgument when `ref` is
    not a reference at all (docker: "invalid reference format")."""
    from berth.image import reference  # lazy: only a create that failed (its lookup loaded it)

    try:
        return NoSuchImage(reference.parse(ref).familiar())
    except ValueError:
        return InvalidArgument("invalid reference format")
