"""The marker relation stage: the markers' pass equals a full transformer pass over text and
markers with PURE's attention rule (markers see the text and their partner; the text sees no
marker), pairs of one entity pair share their markers, and a model with markers saves, loads
and learns."""

import pytest
import torch
from transformers import BertConfig, BertModel

from slcolm_dspy.slm.batching import Encoded, collate
from slcolm_dspy.slm.encoders import TransformerEncoder
from slcolm_dspy.slm.markers import pair_groups
from slcolm_dspy.slm.model import RangeMax, SpanRelationModel
from slcolm_dspy.slm.units import CHAR, build_unit_vocab


def _tiny_bert(vocab_size: int, layers: int = 3) -> TransformerEncoder:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
    )
    return TransformerEncoder(BertModel(config, add_pooling_layer=False))


def _batch(texts, spans_per_text, vocab):
    items = [Encoded(None, vocab.encode(t), spans) for t, spans in zip(texts, spans_per_text, strict=True)]
    return collate(items, vocab, 2, 64, with_labels=False)


def test_pairs_of_the_same_two_spans_share_one_group_in_text_order():
    spans = torch.tensor([[0, 5, 7], [0, 1, 3], [1, 1, 2], [1, 4, 6]])
    pairs = torch.tensor([[0, 1], [1, 0], [2, 3], [3, 2], [0, 1]])
    groups = pair_groups(spans, pairs)
    assert groups.group.tolist()[0] == groups.group.tolist()[1] == groups.group.tolist()[4]
    assert groups.group[2] == groups.group[3] != groups.group[0]
    assert groups.first.numel() == 2
    # the group's first span is the one earlier in the text: span 1 (positions 1-3) before span 0
    g = int(groups.group[0])
    assert (int(groups.first[g]), int(groups.second[g])) == (1, 0)
    assert groups.head_first.tolist() == [False, True, True, False, False]


def test_the_marker_pass_equals_a_full_pass_with_pure_attention():
    """Markers computed from the text's cached states equal a plain BERT layer run over the text
    followed by the markers, with an attention mask that lets each marker see the text and its
    partner and lets no text token see a marker (so the text's states are the plain pass's and
    each layer reads them from it)."""
    texts = ["董卓以其弟旻爲左將軍", "兄子璜爲中軍校尉"]
    vocab = build_unit_vocab(texts, CHAR)
    encoder = _tiny_bert(len(vocab))
    model = SpanRelationModel(encoder, 3, 2, max_span=4, relation_stage="markers", marker_layers=2).eval()
    with torch.no_grad():
        model.markers.kind.weight.normal_()  # make the markers' types matter
    batch = _batch(texts, [[(0, 2), (5, 6), (7, 10)], [(0, 3), (4, 8)]], vocab)
    pairs = torch.tensor([[0, 1], [1, 0], [0, 2], [2, 1], [3, 4]])
    types = torch.tensor([[1, 1], [1, 1], [1, 2], [2, 1], [1, 2]])
    with torch.no_grad():
        context = model.encode(batch)
        groups = pair_groups(batch.spans, pairs)
        span_types = torch.zeros(batch.spans.shape[0], dtype=torch.long)
        span_types[pairs[:, 0]], span_types[pairs[:, 1]] = types[:, 0], types[:, 1]
        layers = encoder.model.encoder.layer
        fast = model.markers(layers[1:], context.layers, batch.spans, batch.widths, span_types, groups)

        # reference: per sentence, one sequence [text tokens, its markers] through HF's layers
        for b in range(len(texts)):
            mine = (batch.spans[groups.first, 0] == b).nonzero().squeeze(1)
            length = int(batch.mask[b].sum())
            members = torch.stack([groups.first[mine], groups.second[mine]], 1)
            kinds = torch.arange(2).expand(len(mine), 2) * model.markers.n_kinds + span_types[members]
            width = batch.widths[members]
            starts = batch.spans[members, 1]
            text = context.layers.inputs[0][b, :length]
            markers = (text[starts] + model.markers.kind(kinds) + model.markers.width(width)).reshape(-1, 32)
            n_markers = 2 * len(mine)
            allowed = torch.zeros(length + n_markers, length + n_markers, dtype=torch.bool)
            allowed[:, :length] = True  # everyone sees the text
            for g in range(len(mine)):
                lo = length + 2 * g
                allowed[lo : lo + 2, lo : lo + 2] = True  # a marker sees its partner (and itself)
            mask = torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))[None, None]
            for k, layer in enumerate(layers[1:]):
                states = torch.cat([context.layers.inputs[k][b, :length], markers]).unsqueeze(0)
                out = layer(states, mask)
                markers = (out[0] if isinstance(out, tuple) else out)[0, length:]
            assert torch.allclose(markers.reshape(-1, 2, 32), fast[mine], atol=1e-5)
            assert not torch.allclose(fast[mine][:, 0], fast[mine][:, 1], atol=1e-3)


def test_a_marker_model_scores_each_direction_and_saves_and_loads(tmp_path):
    from slcolm_dspy.slm import checkpoint
    from slcolm_dspy.slm.batching import Labels

    texts = ["董卓以其弟旻爲左將軍"]
    vocab = build_unit_vocab(texts, CHAR)
    model = SpanRelationModel(
        _tiny_bert(len(vocab)), 2, 3, max_span=4, relation_stage="markers", marker_layers=2, label_dim=32
    ).eval()
    with torch.no_grad():
        model.label_vectors.normal_()
        model.label_projection.weight.normal_()
    batch = _batch(texts, [[(0, 2), (5, 6)]], vocab)
    batch.pairs = torch.tensor([[0, 1], [1, 0]])
    batch.pair_types = torch.tensor([[1, 1], [1, 1]])
    with torch.no_grad():
        _, logits = model(batch)
    assert logits.shape == (2, 3) and not torch.allclose(logits[0], logits[1])  # direction matters
    labels = Labels(("PER", "OFI"), ("父", "兄弟", "任职"))
    config = checkpoint.model_config(model, labels, {"span_rules": {"max_width": 4}})
    assert (config["relation_stage"], config["marker_layers"], config["label_dim"]) == ("markers", 2, 32)
    checkpoint.save(tmp_path, model, vocab, config)
    loaded, *_ = checkpoint.load(tmp_path)
    with torch.no_grad():
        _, again = loaded(batch)
    assert torch.allclose(logits, again)


def test_markers_need_a_transformer_with_layers():
    from slcolm_dspy.slm.encoders import ScratchEncoder

    with pytest.raises(ValueError, match="BERT-style encoder"):
        SpanRelationModel(ScratchEncoder(10), 2, 2, max_span=4, relation_stage="markers")


def test_no_pairs_gives_no_pair_vectors_of_the_right_width():
    texts = ["董卓以其弟旻"]
    vocab = build_unit_vocab(texts, CHAR)
    model = SpanRelationModel(_tiny_bert(len(vocab)), 2, 2, max_span=4, relation_stage="markers").eval()
    batch = _batch(texts, [[(0, 2)]], vocab)
    with torch.no_grad():
        context = model.encode(batch)
        pool = RangeMax(context.hidden)
        vecs = model.span_vectors(pool, batch.spans, batch.widths)
        empty = torch.zeros(0, 2, dtype=torch.long)
        out = model.pair_vectors(context, pool, batch.spans, batch.widths, vecs, empty, empty)
    assert out.shape == (0, model.relation_head[1].in_features)
