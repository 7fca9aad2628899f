"""The one error type users see: its message names the problem and the fix."""


class GeonbError(ValueError):
    """A bad input or state the user can fix; the message says how."""
