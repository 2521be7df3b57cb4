"""Point every medops stage at ``medops_fake_stages`` in each interpreter started here.

kfp.local runs each task in a fresh subprocess, out of reach of monkeypatch; a directory
holding this file on PYTHONPATH is how a test swaps the stage table there.
"""

import dataclasses

import medops.stages

for _name, _stage in list(medops.stages.STAGES.items()):
    medops.stages.STAGES[_name] = dataclasses.replace(
        _stage, function=f"medops_fake_stages:{_name}"
    )
