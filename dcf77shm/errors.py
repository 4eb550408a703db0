"""One exception base for the package.

Expected failures carry the exit status they map to (INTERFACES §4) and a
message that is a single line for the user; the CLI prints it without a
traceback.
"""


class Dcf77Error(Exception):
    """Base of every expected failure.  ``exit_status`` follows INTERFACES §4."""

    exit_status = 1


class BadInput(Dcf77Error):
    """Bad usage or bad input: exit status 2, nothing is decoded or written."""

    exit_status = 2


class RuntimeFailure(Dcf77Error):
    """A failure at run time that the program could not ride out: exit status 1."""

    exit_status = 1
