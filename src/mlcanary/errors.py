"""One error hierarchy for the core; each interface maps it to its own codes.

The CLI turns every ``MlcanaryError`` into one line on stderr and exit code 2;
the HTTP layer maps them to status codes at its edge (``serve/edge.py`` ``STATUS``).
Messages follow one formula: what was wrong, where, what is allowed, what came.
"""


class MlcanaryError(Exception):
    """A problem the user can fix; its message is shown as it is."""


class InvalidInput(MlcanaryError):
    """Data, options or a request that do not meet the contract."""


class NotFound(MlcanaryError):
    """A model, version or file that does not exist."""


class Conflict(InvalidInput):
    """State changed since it was read (someone else acted first), or the action does
    not fit the state it meets (HTTP 409)."""


class PayloadTooLarge(InvalidInput):
    """A request body over the configured limit."""


class UnsupportedMediaType(InvalidInput):
    """A request body in a format the endpoint does not read."""


class Unavailable(MlcanaryError):
    """Not ready, or overloaded: the client may retry later."""


class Unauthorized(MlcanaryError):
    """A protected route without the right bearer token (HTTP 401)."""
