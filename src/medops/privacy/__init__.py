"""Keys and erasure: what GDPR asks of a store of prepared data (docs/privacy.md)."""
