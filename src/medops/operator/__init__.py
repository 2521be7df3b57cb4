"""The medops operator: FineTune and ModelDeployment custom resources on Kubernetes.

Resource builders (``rayjob``, ``inferenceservice``, ``objects``) are pure functions from a
custom resource to a manifest dict; ``kube`` is the only module that talks to the API
server and ``registry`` the only one that talks to MLflow; ``handlers`` wires them to kopf.
"""
