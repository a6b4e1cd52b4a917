"""User-facing errors.

A :class:`CurateError` is a mistake in what the user asked for (a bad path, a
keep fraction outside (0, 1], missing weights).  The CLI prints it as one line
and exits with status 2; the app shows it as a message.  Anything else is a bug
and keeps its traceback.
"""


class CurateError(Exception):
    """A problem with the user's input, stated with what to do about it."""

    exit_code = 2


class Interrupted(CurateError):
    """Raised when the user interrupts a long stage; the next run resumes."""

    exit_code = 130
