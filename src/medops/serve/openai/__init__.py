"""OpenAI-compatible protocol over a ``TextGenerator`` (kserve's own needs vllm).

``schema``: the wire format (pydantic); ``routes``: ``openai_router`` / ``install_openai``.
No model code here: the generator behind ``medops.serve.generation`` does the work.
"""

from medops.serve.openai.routes import PREFIX, install_openai, openai_router

__all__ = ["PREFIX", "install_openai", "openai_router"]
