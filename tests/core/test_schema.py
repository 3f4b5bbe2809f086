import json
from collections import Counter

import pytest

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.schema import load_schema


def test_raw_names_normalise_to_the_inventory(schema):
    assert schema.normalise_relation("任 职 & 爵 位 & 谥 号") == "任职"
    assert schema.normalise_relation("任职&爵位&谥号") == "任职"
    assert schema.normalise_relation("生 于 （ 地 点 ）") == "生于地点"
    assert schema.normalise_relation("封&赐官") == "封"
    assert schema.normalise_relation("其他关系") == "其他"
    assert schema.normalise_relation("亲信") == "亲信"  # not in the inventory: left for callers to reject


def test_inventory_matches_the_corpus_types_file(schema, corpus_dir):
    types = json.loads((corpus_dir / "chisre_types.json").read_text(encoding="utf-8"))
    assert {schema.normalise_relation(t) for t in types["relations"]} == set(schema.relation_types)
    assert set(types["entities"]) == set(schema.entity_names)
    assert len(schema.relation_types) == 40


def test_head_tail_split_is_the_train_count_rule(schema, corpus_dir):
    train = json.loads((corpus_dir / "train.json").read_text(encoding="utf-8"))
    counts = Counter(schema.normalise_relation(r["type"]) for v in train.values() for r in v["relations"])
    expected = {t for t, n in counts.items() if n >= schema.head_threshold}
    assert set(schema.head_types) == expected
    assert len(schema.head_types) == 18 and len(schema.tail_types) == 22


def test_schema_from_path_and_errors(tmp_path):
    path = tmp_path / "mini.toml"
    path.write_text(
        '[schema]\nname = "mini"\n[entities]\nPER = "person"\n[relations]\ntypes = ["knows"]\n',
        encoding="utf-8",
    )
    mini = load_schema(path)
    assert mini.relation_types == ("knows",) and mini.corpus is None
    assert mini.tail_types == ()
    with pytest.raises(SlcolmError, match="unknown schema"):
        load_schema("no-such-schema")
    bad = tmp_path / "bad.toml"
    bad.write_text("[schema\n", encoding="utf-8")
    with pytest.raises(SlcolmError, match=r"bad\.toml: not valid TOML"):
        load_schema(bad)
    missing = tmp_path / "missing.toml"
    missing.write_text('[schema]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(SlcolmError, match=r"missing\.toml: \[entities\] is missing"):
        load_schema(missing)


MINI = '[schema]\nname = "mini"\n[entities]\nPER = "person"\nLOC = "place"\n[relations]\ntypes = ["knows"]\n'


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # a number where a name belongs
        (
            ('types = ["knows"]', "types = [7]"),
            r"\[relations\] types must be a list of strings, got a list \[7\]",
        ),
        # a string where a list belongs: not "types not in [relations].types"
        (
            ('types = ["knows"]', 'types = "knows"'),
            r"\[relations\] types must be a list of strings, got the string",
        ),
        (('types = ["knows"]', "types = []"), r"\[relations\] types is empty"),
        (
            ("[relations]\n", "[relations]\ndirection_insensitiv = []\n"),
            r"unknown key 'direction_insensitiv' in \[relations\]; did you mean 'direction_insensitive'\?",
        ),
        (("[entities]", "[entitys]"), r"\[entities\] is missing"),
        (
            ("[relations]", '[entitys]\nX = "x"\n[relations]'),
            r"unknown table \[entitys\]; did you mean 'entities'\?",
        ),
        (('LOC = "place"', 'LOC = "person"'), r"\[entities\] 'PER' and 'LOC' both display as 'person'"),
        (('name = "mini"', "name = 3"), r"\[schema\] name must be a string, got the number 3"),
    ],
)
def test_a_schema_outside_its_declared_shape_is_one_line_naming_the_place(tmp_path, change, said):
    path = tmp_path / "mini.toml"
    path.write_text(MINI.replace(*change), encoding="utf-8")
    with pytest.raises(SlcolmError, match=said):
        load_schema(path)
