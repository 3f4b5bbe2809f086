"""Score the replay pack's recorded outputs: the paper's runs, then every merge mode on them.

The recorded LLM answers are raw JSON tables, so this works at table level: fold each answer,
merge with the recorded SLM relations, apply the paper protocol's filter and count.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.data.replay_pack import ReplayPack
from slcolm_dspy.evaluate import RelationEvaluator, score_paper_tables
from slcolm_dspy.evaluate.paper import entity_strings, fold_answer, sentence_table
from slcolm_dspy.merge.modes import MODE2_THRESHOLDS, MergeMode, by_source, merge_tables

# The recorded answers put their relations under this key (the authors' output format).
ANSWER_RELATIONS_KEY = "真实的关系"


def recorded_filter(slm: Sentence, schema: Schema) -> set[str]:
    """The allowed-entity set: the SLM's recorded entity strings."""
    return entity_strings(slm, None, schema)


def slm_table(slm: Sentence, threshold: float | None) -> dict[str, list[list[str]]]:
    table: dict[str, list[list[str]]] = {}
    for rel in slm.relations:
        if threshold is not None and (rel.probability is None or rel.probability <= threshold):
            continue
        table.setdefault(rel.type, []).append([slm.entities[rel.head].text, slm.entities[rel.tail].text])
    return table


def score_run(
    pack: ReplayPack,
    run: str,
    schema: Schema,
    mode: MergeMode,
    *,
    llm_types: Collection[str] = (),
    threshold: float | None = None,
    sources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Micro/macro of one recorded LLM run merged with the recorded SLM, paper protocol.

    With `sources` (type -> slm / llm / union), the per-type policy replaces `mode`."""
    if run not in pack.runs:
        raise SlcolmError(f"no run {run!r} in {pack.directory}; have {', '.join(pack.runs)}")
    gold = {g.text: g for g in pack.test_gold}
    slm = {s.text: s for s in pack.test_slm}
    seen: set[str] = set()
    items = []
    for text, raw in pack.runs[run]:
        if text in seen or text not in gold:
            continue  # first answer per sentence; sentences without gold are not scored
        seen.add(text)
        answer = raw.get(ANSWER_RELATIONS_KEY, {}) if isinstance(raw, dict) else {}
        s = slm.get(text)
        llm = fold_answer(answer, schema)
        slm_part = slm_table(s, threshold if mode == "2" else None) if s else {}
        if sources is not None:
            merged = by_source(llm, slm_part, sources)
        else:
            merged = merge_tables(llm, slm_part, mode, llm_types)
        items.append((sentence_table(gold[text], None), merged, recorded_filter(s, schema) if s else None))
    return score_paper_tables(items, schema)


def score_slm(gold: Sequence[Sentence], slm: Sequence[Sentence], schema: Schema) -> dict[str, Any]:
    """The recorded SLM alone, with the same protocol and entity filter."""
    by_text = {s.text: s for s in slm}
    covered = [g for g in gold if g.text in by_text]
    allowed = {g.id: recorded_filter(by_text[g.text], schema) for g in covered}
    return RelationEvaluator(covered, schema, "paper", allowed_entities=allowed)(slm)


@dataclass(frozen=True)
class WRule:
    name: str
    description: str
    source: str
    k: int | None = None
    max_f1: float | None = None
    # per-type rules: union where the SLM is precise on dev but misses (P >= this, R < that)
    union_min_precision: float | None = None
    union_max_recall: float | None = None

    @property
    def per_type(self) -> bool:
        return self.union_min_precision is not None


def load_w_rules() -> list[WRule]:
    blob = resources.files("slcolm_dspy.optimize").joinpath("merge_rules.toml").read_bytes()
    rules = tomllib.loads(blob.decode("utf-8"))["rules"]
    return [
        WRule(
            name,
            spec["description"],
            spec["source"],
            spec.get("k"),
            spec.get("max_f1"),
            spec.get("union_min_precision"),
            spec.get("union_max_recall"),
        )
        for name, spec in rules.items()
    ]


def choose_w(
    rule: WRule, schema: Schema, slm_dev: Mapping[str, Any] | None, train_counts: Mapping[str, int]
) -> list[str]:
    """W from SLM-only information: never from test."""
    if rule.source == "schema_tail":
        return list(schema.tail_types)
    if slm_dev is None:
        raise SlcolmError(f"rule {rule.name} needs SLM dev predictions")
    per_type = slm_dev["per_type"]
    # Unscored types (no dev gold) rank lowest: nothing shows the SLM handles them.
    f1 = {t: per_type[t]["f1"] if t in per_type else -1.0 for t in schema.relation_types}
    ranked = sorted(schema.relation_types, key=lambda t: (f1[t], train_counts.get(t, 0), t))
    if rule.k is not None:
        return ranked[: rule.k]
    if rule.max_f1 is not None:
        return [t for t in ranked if f1[t] < rule.max_f1]
    raise SlcolmError(f"rule {rule.name} sets neither k nor max_f1")


def choose_sources(
    rule: WRule, schema: Schema, slm_dev: Mapping[str, Any], train_counts: Mapping[str, int]
) -> dict[str, str]:
    """A per-type policy from SLM-only information: W from the LLM, and the union for types the
    SLM predicts precisely on dev but with low recall (keep its items, add the LLM's)."""
    sources = {t: "llm" for t in choose_w(rule, schema, slm_dev, train_counts)}
    for rel_type, row in slm_dev["per_type"].items():
        if rel_type in sources or rule.union_min_precision is None or rule.union_max_recall is None:
            continue
        if row["p"] >= rule.union_min_precision and row["r"] < rule.union_max_recall:
            sources[rel_type] = "union"
    return sources


@dataclass
class RecordedRun:
    run: str
    label: str  # the mode (and W list) the run was recorded with
    result: dict[str, Any]
    expected: tuple[float, float] | None  # micro / macro F1 in percent, from expected.json
    settings: dict[str, Any]

    @property
    def reproduced(self) -> bool | None:
        if self.expected is None:
            return None
        got = (round(100 * self.result["micro_f1"], 2), round(100 * self.result["macro_f1"], 2))
        return got == self.expected


@dataclass
class ReplayReport:
    """Everything `slcolm replay` prints, computed without printing."""

    runs: list[str]
    recorded: list[RecordedRun]
    slm: dict[str, dict[str, Any] | None]  # "test", "dev"
    w_lists: dict[str, list[str]]
    per_type_sources: dict[str, dict[str, str]]
    modes: dict[str, dict[str, dict[str, Any]]]  # row label -> run -> result

    @property
    def mismatches(self) -> int:
        return sum(1 for r in self.recorded if r.reproduced is False)

    def to_json(self) -> dict[str, Any]:
        return {
            "recorded": {r.run: {"settings": r.settings, "result": r.result} for r in self.recorded},
            "slm": self.slm,
            "w_lists": self.w_lists,
            "per_type_sources": self.per_type_sources,
            "modes": self.modes,
        }


def _recorded(pack: ReplayPack, schema: Schema) -> list[RecordedRun]:
    expected_runs: dict[str, Any] = pack.expected.get("runs", {})
    out = []
    for run in pack.runs:
        settings = expected_runs.get(run, {}).get("settings", {"merge_mode": 0})
        mode, w = str(settings["merge_mode"]), settings.get("W") or []
        result = score_run(pack, run, schema, mode, llm_types=w)  # type: ignore[arg-type]
        exp = expected_runs.get(run, {}).get("expected")
        want = (exp["micro_pct"][2], exp["macro_pct"][2]) if exp else None
        label = f"mode {mode}" + (f", W = {settings.get('W_name', len(w))}" if w else "")
        out.append(RecordedRun(run, label, result, want, settings))
    return out


def _choices(
    pack: ReplayPack, schema: Schema, slm_dev: dict[str, Any] | None, train_counts: Mapping[str, int]
) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """W lists (the authors' test-chosen one for reference, and ours from train counts and SLM dev
    scores only) and per-type source choices."""
    w_lists: dict[str, list[str]] = {}
    authors_w = pack.expected.get("W_lists", {})
    if "K12_ernie" in authors_w:
        w_lists["authors K12 (test-chosen)"] = authors_w["K12_ernie"]
    per_type: dict[str, dict[str, str]] = {}
    for rule in load_w_rules():
        if rule.source == "slm_dev" and slm_dev is None:
            continue
        if rule.per_type:
            if slm_dev is not None:
                per_type[rule.name] = choose_sources(rule, schema, slm_dev, train_counts)
            continue
        w_lists[rule.name] = choose_w(rule, schema, slm_dev, train_counts)
    return w_lists, per_type


def replay_report(pack: ReplayPack, schema: Schema, train_counts: Mapping[str, int]) -> ReplayReport:
    """Re-score the recorded runs, the recorded SLM, and every merge mode on the recorded outputs."""
    slm_test = score_slm(pack.test_gold, pack.test_slm, schema)
    slm_dev = score_slm(pack.dev_gold, pack.dev_slm, schema) if pack.dev_slm else None
    w_lists, per_type = _choices(pack, schema, slm_dev, train_counts)
    rows: list[tuple[str, dict[str, Any]]] = [
        ("mode 0 (LLM alone)", {"mode": "0"}),
        ("mode 1 (union)", {"mode": "1"}),
        *((f"mode 2 (union, SLM p > {h})", {"mode": "2", "threshold": h}) for h in MODE2_THRESHOLDS),
        *((f"mode 3, W = {name}", {"mode": "3", "llm_types": w}) for name, w in w_lists.items()),
        *((f"clean mode 3, W = {name}", {"mode": "3-clean", "llm_types": w}) for name, w in w_lists.items()),
        ("mode 4 (SLM wins overlap)", {"mode": "4"}),
        *((f"per-type, rule = {name}", {"mode": "1", "sources": s}) for name, s in per_type.items()),
    ]
    modes = {
        label: {run: score_run(pack, run, schema, **args) for run in pack.runs}  # type: ignore[arg-type]
        for label, args in rows
    }
    return ReplayReport(
        list(pack.runs),
        _recorded(pack, schema),
        {"test": slm_test, "dev": slm_dev},
        w_lists,
        per_type,
        modes,
    )
