"""Alembic migrations of the feedback store (applied by ``review.store.migrate``)."""
