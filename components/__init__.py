"""KFP components: thin wrappers that hand one medops stage to ``medops.stages.run_stage``."""

from components.stages import MEDOPS_IMAGE, evaluate, finetune, prepare, register, train

__all__ = ["MEDOPS_IMAGE", "evaluate", "finetune", "prepare", "register", "train"]
