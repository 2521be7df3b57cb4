"""Fixtures the erasure tests share with the feature-store tests: a FHIR recipe with a
feature store, and the real Redis on loopback (tests/features/conftest.py)."""

from tests.features.conftest import fhir_recipe, redis_connection

__all__ = ["fhir_recipe", "redis_connection"]
