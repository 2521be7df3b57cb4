"""The medops operator: FineTune and ModelDeployment custom resources on Kubernetes.

``rayjob`` and ``inferenceservice`` are pure builders (custom resource in, manifest dict
out) on the shared pieces in ``objects``; ``status`` computes status from what children
report; ``reconcile`` decides; ``kube`` is the only module that calls the API server and
``registry`` the only one that calls MLflow; ``handlers`` wires reconcile to kopf;
``schema`` validates objects against CRD schemas as the API server would.
"""
