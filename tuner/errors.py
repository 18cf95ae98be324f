"""Errors that reach the user as one clear line, raised where the bad value enters."""


class CceTuneError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""


class DataError(CceTuneError):
    """A dataset that is missing, malformed, or empty after filtering."""
