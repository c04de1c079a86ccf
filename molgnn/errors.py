"""User-facing errors: each carries one clear line naming the file, row, column or config key."""


class MolgnnError(Exception):
    """An error caused by the user's input or configuration (not a bug). The CLI prints it as one line."""


class InputFileError(MolgnnError):
    """A data file cannot be used: missing, unreadable, wrong columns, no valid rows."""


class CheckpointError(MolgnnError):
    """A checkpoint cannot be loaded: not a checkpoint, truncated, newer format, wrong spec or keys."""
