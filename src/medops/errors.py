"""The one error type a user can fix.

Every error medops raises for a user to act on (a bad recipe key, a record it cannot read,
a missing model version, a cluster that refused) derives from ``MedopsError`` and says
which key or record is wrong and what to do. The CLI prints those as one line and exits 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MedopsError(Exception):
    """A problem with the user's input, data or environment; the message names the fix."""


class ConfigurationError(MedopsError, ValueError):
    """A value the user chose (a recipe key, a CLI flag) that cannot be used as given."""


class MissingInputError(MedopsError, FileNotFoundError):
    """A file, directory, package or stage output that should exist does not."""


class DataError(MedopsError, ValueError):
    """Records or splits that cannot be used as they are; names the split, record or column."""
