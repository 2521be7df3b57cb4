"""What a protocol layer (OpenAI routes, KServe v1/v2) asks of a served text generator.

Protocols are kept apart from the model, as in kserve: routes turn requests into a prompt
and ``GenerationParams``, and read back text pieces and one ``Finished``. Guards (input
de-identification, output redaction), limits and batching live behind this interface, so
every protocol gets them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from medops.model.decode import Finished, GenerationParams

__all__ = ["EntityContext", "Finished", "GenerationParams", "Refused", "TextGenerator"]


class Refused(Exception):
    """A request refused before or during generation: a 4xx with a message that names the
    field and the fix, never the request's content."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


@dataclass(frozen=True)
class EntityContext:
    """What the online store knew of a request's entity, for a model trained with a
    context line: ``status`` (``found``, ``unknown id``, ``no id``) goes back in the answer;
    ``place`` puts the line into a de-identified user turn where training put it."""

    status: str
    place: Callable[[str], str]


class TextGenerator(Protocol):
    # the request key naming the entity whose features the model reads (``drug``,
    # ``patient_key``); None: the model was trained without context
    context_key: str | None

    def model_names(self) -> list[str]:
        """Served names a request's ``model`` may take (the first is the default)."""
        ...

    async def context(self, entity: str | None) -> EntityContext | None:
        """The entity's online features (None: the model reads none). An id the store does
        not know is answered as "no history", never refused."""
        ...

    async def chat_prompt(
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        context: EntityContext | None = None,
    ) -> str:
        """The prompt for ``messages`` in ``model``'s chat template, their text de-identified,
        then ``context``'s line placed in the last user turn.

        Raises ``Refused``: 404 ``model_not_found`` for an unknown model, 422 for a message
        over the character limit or a conversation with nothing to answer."""
        ...

    async def text_prompt(
        self, model: str, prompt: str, context: EntityContext | None = None
    ) -> str:
        """A raw completion prompt, de-identified, then ``context``'s line placed in it
        (same refusals as ``chat_prompt``).

        Both are coroutines: de-identification runs a spaCy pipeline, off the event loop."""
        ...

    def stream(
        self, model: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | Finished]:
        """Text pieces as they are decoded, then one ``Finished``.

        Raises ``Refused`` for limits (422), a full queue (429) or an unknown model (404).
        Closing the iterator early (client gone) frees the request's batch slot."""
        ...
