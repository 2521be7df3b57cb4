from __future__ import annotations

import pytest

from medops.deid.language import guess_language


@pytest.mark.parametrize(
    "text,language",
    [
        ("Patient seen today with his wife. He denies chest pain.", "en"),
        ("Le patient est hospitalisé pour une décompensation cardiaque avec dyspnée.", "fr"),
        ("Na 138 K 3.9 GLU 95", "en"),  # nothing to go on: the default model
        ("", "en"),
    ],
)
def test_function_words_decide_the_language(text: str, language: str) -> None:
    assert guess_language(text) == language
