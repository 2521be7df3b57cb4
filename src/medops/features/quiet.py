"""Keep Feast's chatter out of what medops commands print.

Feast prints coloured progress lines and tqdm bars while it materializes, and Feast, ibis
and dask warn about their own deprecations on every join. A medops command prints one
summary of its own; what Feast says is not actionable for a user and would bury it.
Errors still propagate: only output and warnings are held back.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout

_CHATTY_LOGGERS = ("feast", "ibis", "dask", "distributed", "sqlglot")


@contextmanager
def quiet() -> Iterator[None]:
    """Silence Feast for the duration of one call (apply, join, materialize).

    Not for the online lookup path: redirecting ``sys.stdout`` is process-wide, and a
    server answering on other threads must keep its output.
    """
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(redirect_stdout(io.StringIO()))
        stack.enter_context(redirect_stderr(io.StringIO()))
        for name in _CHATTY_LOGGERS:
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.ERROR)
        yield
