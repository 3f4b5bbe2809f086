"""Long documents: segmentation into readable units and stitching their predictions back with
document offsets (slcolm_dspy/data/segment.py)."""

from __future__ import annotations

import itertools
import random

import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.data.segment import segment, stitch

NAMES = ["曹操", "劉備", "孫權", "諸葛亮", "司馬懿", "關羽"]


def planted_document(length: int = 20_000, seed: int = 0) -> tuple[Sentence, list[tuple[int, str]]]:
    """Unpunctuated filler with names planted at known offsets; every name is followed by 伐
    and the next name, so each planted pair is a relation."""
    rng = random.Random(seed)
    filler = "之而以於其為也者"
    parts, planted, at = [], [], 0
    while at < length - 40:
        gap = "".join(rng.choice(filler) for _ in range(rng.randint(5, 60)))
        name = rng.choice(NAMES)
        parts += [gap, name]
        planted.append((at + len(gap), name))
        at += len(gap) + len(name)
    return Sentence("book", "".join(parts)), planted


def reader(unit: Sentence) -> Sentence:
    """A stand-in model that finds every planted name wholly inside the unit and relates each
    name to the next one in the unit (what a trained SLM would do, without its cost)."""
    found = []
    for name in NAMES:
        start = unit.text.find(name)
        while start != -1:
            found.append(Entity("PER", name, start, start + len(name), 0.9))
            start = unit.text.find(name, start + 1)
    found.sort(key=lambda e: e.start)
    relations = [Relation("攻伐", i, i + 1, 0.8) for i in range(len(found) - 1)]
    return unit.with_predictions(found, relations)


def test_a_20000_character_unpunctuated_document_loses_nothing():
    document, planted = planted_document()
    assert len(document.text) >= 19_960 and not any(c in document.text for c in "。！？")
    segmentation = segment(document, max_chars=400, overlap=100)
    assert segmentation.covered() and segmentation.windows == len(segmentation.units) > 60
    assert all(len(u.text) <= 400 for u in segmentation.units)
    assert all(document.text[u.start : u.start + len(u.text)] == u.text for u in segmentation.units)
    result = stitch(segmentation, [reader(u.record()) for u in segmentation.units])
    # every planted name at its document offset, once, none invented
    assert [(e.start, e.text) for e in result.entities] == planted
    assert all(document.text[e.start : e.end] == e.text for e in result.entities)
    # the relation between neighbours is found even where a window edge falls between them
    pairs = {(result.entities[r.head].start, result.entities[r.tail].start) for r in result.relations}
    neighbours = {(a[0], b[0]) for a, b in itertools.pairwise(planted) if b[0] - a[0] < 50}
    assert neighbours <= pairs
    assert len(result.relations) == len(pairs)  # each kept once though seen in two windows


def test_punctuated_text_is_cut_at_sentences_and_lines_with_document_offsets():
    text = "曹操伐劉備。孫權降。\n諸葛亮出師！"
    segmentation = segment(Sentence("d", text), max_chars=400, overlap=100)
    assert [(u.start, u.text) for u in segmentation.units] == [
        (0, "曹操伐劉備。"),
        (6, "孫權降。"),
        (11, "諸葛亮出師！"),
    ]
    assert segmentation.windows == 0
    result = stitch(segmentation, [reader(u.record()) for u in segmentation.units])
    assert [(e.text, e.start) for e in result.entities] == [
        ("曹操", 0),
        ("劉備", 3),
        ("孫權", 6),
        ("諸葛亮", 11),
    ]
    assert result.triples() == [("攻伐", "曹操", "劉備")]  # sentences are not related across


def test_bad_settings_and_mismatched_predictions_are_refused():
    with pytest.raises(SlcolmError, match="overlap 300 must be at most half"):
        segment(Sentence("d", "x" * 10), max_chars=400, overlap=300)
    segmentation = segment(Sentence("d", "曹操。劉備。"))
    with pytest.raises(SlcolmError, match="1 predictions for 2 units"):
        stitch(segmentation, [Sentence("x", "曹操。")])


def test_a_tiny_trained_model_finds_every_planted_name_at_its_document_offset(schema, tmp_path):
    """The whole path with a real model: a scratch-encoder SLM trained on short planted
    sentences reads the 20,000-character unpunctuated document in windows; stitched, every
    planted name is found at its offset in the document, once."""
    from slcolm_dspy.slm.extractor import SpanExtractor
    from slcolm_dspy.slm.train import TrainConfig, train

    rng = random.Random(1)
    filler = "之而以於其為也者"
    examples = []
    for i in range(12):
        left = "".join(rng.choice(filler) for _ in range(rng.randint(3, 12)))
        right = "".join(rng.choice(filler) for _ in range(rng.randint(3, 12)))
        name = NAMES[i % len(NAMES)]
        text = left + name + right
        entity = Entity("PER", name, len(left), len(left) + len(name))
        examples.append(Sentence(f"t{i}", text, (entity,)))
    config = TrainConfig(
        encoder="scratch", epochs=80, batch_size=4, lr_encoder=5e-3, lr_heads=5e-3, warmup=0.05,
        dropout=0.0, patience=80, threads=1, max_minutes=3,
    )  # fmt: skip
    train(examples, examples, schema, tmp_path / "slm", config)
    extractor = SpanExtractor.load(tmp_path / "slm")
    document, planted = planted_document()
    segmentation = segment(document, max_chars=400, overlap=100)
    predicted = extractor.predict([u.record() for u in segmentation.units])
    result = stitch(segmentation, predicted)
    got = [(e.start, e.text) for e in result.entities if e.type == "PER"]
    assert got == planted
