"""Alembic migrations of the audit log (applied by ``registry.audit.migrate``)."""
