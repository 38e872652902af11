"""The one exception type users see.

Every failure a user can cause (a wrong path, a corrupt file, a missing GPU, an
empty corpus) is raised as ``MinirnnError`` with a one-line message that says what
is wrong and what to do.  The command line prints that line and exits non-zero;
it never shows a traceback for these.
"""


class MinirnnError(Exception):
    """A user-facing error whose message is one actionable line."""


class DeviceError(MinirnnError):
    """The requested device (GPU) cannot be used."""
