"""Point-in-time features served by Feast: the drug history of the drug-review demo and the
patient context of FHIR sources (docs/features.md).

Computation (``drug_history``, ``patient_context``) writes parquet rows with event
timestamps; ``build`` generates the Feast repository under ``<output_dir>/features`` and
applies it; ``training`` joins training rows as of their time; ``online`` materializes and
looks entities up; ``erasure`` removes one entity. This package imports nothing on import:
Feast is slow to import (it pulls torch), and a serving process that only looks features
up must not pull in the computation modules (which read sources through ``medops.data``).
"""
