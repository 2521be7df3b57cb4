"""De-identification: detect PHI spans, apply a policy (redact or pseudonymise), score it.

Only ``detect`` loads spaCy and presidio; reading prepared data never imports this package.
"""
