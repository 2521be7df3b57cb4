"""Serving: a KServe predictor over the registered pyfunc, its protocol codecs and a client.

Modules are kept apart so that importing the client (httpx only) never pulls in KServe,
whose import parses ``sys.argv``: ``predictor`` (model hooks), ``v1``/``v2`` (protocols),
``server`` (ModelServer bound to the recipe's host), ``client`` (HTTP helpers).
"""
