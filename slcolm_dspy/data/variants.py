"""Add a character-aligned variant form (e.g. simplified Chinese) to users' own records.

Never used on the corpus when comparing with the paper: the corpus carries its own simplified
form, and no maintained converter reproduces the table the authors used (BENCHMARKS.md,
"Traditional vs simplified"). For users' text, OpenCC is the maintained choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence

Converter = Callable[[str], str]


def opencc_converter(config: str = "t2s") -> Converter:
    try:
        import opencc  # optional dependency: pip install 'slcolm-dspy[opencc]'
    except ImportError:
        raise SlcolmError("OpenCC is not installed: pip install 'slcolm-dspy[opencc]'") from None
    return opencc.OpenCC(config).convert


def aligned(text: str, convert: Converter) -> str:
    """`convert(text)` when it keeps the length; otherwise character by character, so offsets hold."""
    whole = convert(text)
    if len(whole) == len(text):
        return whole
    out = []
    for char in text:
        converted = convert(char)
        out.append(converted if len(converted) == 1 else char)
    return "".join(out)


def add_variant(records: Iterable[Sentence], form: str, convert: Converter) -> list[Sentence]:
    """Records with `variants[form]` filled where missing; existing forms are kept as they are."""
    return [
        r if form in r.variants else replace(r, variants={**r.variants, form: aligned(r.text, convert)})
        for r in records
    ]
