"""Errors of the feature store a user can act on; none names a patient or prints a value."""

from __future__ import annotations

from medops.errors import ConfigurationError, DataError, MedopsError


class FeatureConfigError(ConfigurationError):
    """A ``features:`` setting or environment variable that cannot be used as given."""


class FeatureDataError(DataError):
    """Rows handed to a join, or source columns, that do not fit; names the column."""


class OnlineStoreUnreachable(MedopsError, ConnectionError):
    """The online store did not answer; names the server (never the password) and the key."""


class FeatureStoreMissing(MedopsError, FileNotFoundError):
    """A directory that should hold a generated feature repository does not."""
