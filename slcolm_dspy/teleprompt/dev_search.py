"""`DevF1Search`: a DSPy teleprompter that compiles an `SLCoLMProgram` against the corpus
macro-F1 of the *merged* output on a dev sample.

Two kinds of knobs, treated differently because they cost differently:
- prompt knobs (module, demonstrations: number, source, order; number of definitions, options
  per question, rotations) change what the LLM is asked, so every setting is a guide run on the
  sample, paid in LLM calls. They are searched one at a time from the preset's first values
  (coordinate search), until the budget of LLM calls is spent.
- offline knobs (routing band, answer thresholds, merge policy) only change how the answers are
  read and merged. Each run is made with the widest band of the search space, and every band
  inside it is replayed from the stored answers at no LLM cost.

A routing band that sends more than `max_llm_share` of the sentences to the LLM is not a
candidate (the share is estimated on the whole dev split when a `share_of` is given: routing needs
only the SLM's scores). The SLM alone is always one: the compiled program is never worse on dev than the
supervised model. The learned per-type policy is scored cross-fitted (learned on one half of the
sample, scored on the other) so that its 40 choices do not flatter it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import dspy
from dspy.teleprompt import Teleprompter

from slcolm_dspy.core.errors import SlcolmError
from slcolm_dspy.core.records import Sentence
from slcolm_dspy.core.schema import Schema
from slcolm_dspy.core.toml_files import read_toml
from slcolm_dspy.evaluate import RelationEvaluator, ranking_key
from slcolm_dspy.guide.choice import ChoiceThresholds, RoutingSettings
from slcolm_dspy.guide.pipeline import GuideConfig, make_adapter
from slcolm_dspy.guide.strategies import strategy_for
from slcolm_dspy.merge.modes import MODE2_THRESHOLDS
from slcolm_dspy.merge.policy import MergePolicy, cross_fitted, learn_per_type
from slcolm_dspy.program.module import PROMPT_KNOBS, SLCoLMProgram
from slcolm_dspy.program.outcome import GuideOutcome, llm_view
from slcolm_dspy.replay import choose_w, load_w_rules


@dataclass(frozen=True)
class SearchSpace:
    """An optimizer preset (`optimize/<name>.toml`)."""

    name: str
    description: str
    sample: int  # dev sentences the candidates are scored on
    budget_calls: int  # LLM calls the search may spend (cached answers are free)
    max_llm_share: float  # at most this share of sentences may reach the LLM
    prompt: Mapping[str, Sequence[Any]]  # PROMPT_KNOBS -> values, first = starting point
    top_n: int = 3
    routing: Mapping[str, Sequence[float]] = field(default_factory=dict)
    route_sentences: Sequence[bool] = (True,)
    thresholds: Mapping[str, Sequence[float]] = field(default_factory=dict)
    policies: Sequence[str] = (
        "slm",
        "llm",
        "mode-1",
        "mode-2",
        "mode-3",
        "mode-3-clean",
        "mode-4",
        "per-type",
    )
    mode2_thresholds: Sequence[float] = MODE2_THRESHOLDS
    w_rules: Sequence[str] = ("dev_lowest_k", "dev_f1_below", "tail_by_train_count")
    views_kept: int = 4  # best routing/threshold settings whose merge policies are all tried
    folds: int = 2
    dspy_optimizer: str = "none"  # extract only: none, labeled, bootstrap or gepa (DSPy's own)
    dspy_demos: int = 2
    gepa_metric_calls: int = 200  # GEPA's budget of per-sentence evaluations (each one LLM call)
    gepa_candidates: int = 3  # GEPA's best instructions re-scored by corpus F1 (one dev run each)

    def probe_routing(self) -> RoutingSettings:
        """The widest band: every band of the space routes a subset of its pairs."""
        r = self.routing
        return RoutingSettings(
            low=min(r.get("low", [0.1])),
            high=max(r.get("high", [0.9])),
            margin=max(r.get("margin", [0.2])),
            top_n=self.top_n,
        )

    def bands(self) -> list[RoutingSettings]:
        r = self.routing
        out = []
        for low, high, margin in itertools.product(
            r.get("low", [0.1]), r.get("high", [0.9]), r.get("margin", [0.2])
        ):
            if low < high:
                out.append(RoutingSettings(low=low, high=high, margin=margin, top_n=self.top_n))
        return out

    def threshold_sets(self) -> list[ChoiceThresholds]:
        t = self.thresholds
        return [
            ChoiceThresholds(accept=a, reject=r, keep=k)
            for a, r, k in itertools.product(
                t.get("accept", [0.5]), t.get("reject", [0.5]), t.get("keep", [0.5])
            )
        ]


def load_preset(name_or_path: str | Path) -> SearchSpace:
    """A preset shipped in `optimize/` by name, or a TOML file."""
    source, raw = read_toml(name_or_path, package="slcolm_dspy.optimize", folder="", what="optimizer preset")
    try:
        prompt = {k: list(v) for k, v in raw["prompt"].items()}
        unknown = sorted(set(prompt) - set(PROMPT_KNOBS))
        if unknown:
            raise SlcolmError(
                f"{source}: unknown prompt knob {unknown[0]!r}; known: {', '.join(PROMPT_KNOBS)}"
            )
        if any(not values for values in prompt.values()):
            raise SlcolmError(f"{source}: every prompt knob needs at least one value")
        search = raw.get("search", {})
        return SearchSpace(
            name=Path(str(name_or_path)).stem,
            description=raw.get("description", ""),
            sample=int(search.get("sample", 100)),
            budget_calls=int(search.get("budget_calls", 1000)),
            max_llm_share=float(search.get("max_llm_share", 0.4)),
            prompt=prompt,
            top_n=int(search.get("top_n", 3)),
            routing={k: list(v) for k, v in raw.get("routing", {}).items()},
            route_sentences=list(raw.get("route_sentences", [True])),
            thresholds={k: list(v) for k, v in raw.get("thresholds", {}).items()},
            policies=list(raw.get("merge", {}).get("policies", SearchSpace.policies)),
            mode2_thresholds=list(raw.get("merge", {}).get("mode2_thresholds", SearchSpace.mode2_thresholds)),
            w_rules=list(raw.get("merge", {}).get("w_rules", SearchSpace.w_rules)),
            views_kept=int(search.get("views_kept", 4)),
            folds=int(search.get("folds", 2)),
            dspy_optimizer=str(search.get("dspy_optimizer", "none")),
            dspy_demos=int(search.get("dspy_demos", 2)),
            gepa_metric_calls=int(search.get("gepa_metric_calls", 200)),
            gepa_candidates=int(search.get("gepa_candidates", 3)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SlcolmError(f"{source}: missing or malformed entry {exc}") from None


class CandidateRunner(Protocol):
    """Runs the program with `config` on the sample; returns what the guide produced and how many
    LLM calls that cost (answers found in the cache cost none)."""

    def __call__(self, program: SLCoLMProgram, records: Sequence[Sentence]) -> tuple[GuideOutcome, int]: ...


@dataclass
class Candidate:
    """One row of the candidate table."""

    number: int
    prompt: dict[str, Any]
    routing: RoutingSettings | None
    thresholds: ChoiceThresholds | None
    route_sentences: bool
    policy: MergePolicy
    llm_share: float
    macro_f1: float
    micro_f1: float
    rank: tuple[float, float]  # the evaluator's ranking key: what "better" means
    run_calls: int = 0  # LLM calls of the guide run this candidate reads (0: shared with an earlier row)
    chosen: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "prompt": self.prompt,
            "routing": None if self.routing is None else vars(self.routing) | {},
            "thresholds": None if self.thresholds is None else vars(self.thresholds) | {},
            "route_sentences": self.route_sentences,
            "policy": self.policy.label,
            "llm_share": self.llm_share,
            "macro_f1": self.macro_f1,
            "micro_f1": self.micro_f1,
            "run_calls": self.run_calls,
            "chosen": self.chosen,
        }


def as_examples(records: Sequence[Sentence]) -> list[dspy.Example]:
    """Gold records as DSPy examples (the teleprompter's trainset)."""
    return [dspy.Example(sentence=r.text, record=r).with_inputs("sentence") for r in records]


def _band(band: RoutingSettings | None) -> str:
    if band is None:
        return "every sentence"
    return f"pairs with SLM probability in [{band.low:g}, {band.high:g}], margin {band.margin:g}"


class DevF1Search(Teleprompter):
    def __init__(
        self,
        space: SearchSpace,
        runner: CandidateRunner,
        schema: Schema,
        *,
        train_counts: Mapping[str, int] | None = None,
        share_of: Callable[[GuideConfig], float] | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        """`share_of`: the share of sentences a configuration sends to the LLM, estimated on more
        text than the sample (routing needs only the SLM's scores, so the whole dev split costs
        no LLM call); without it the sample's own share is used."""
        super().__init__()
        self.share_of = share_of
        self.space = space
        self.runner = runner
        self.schema = schema
        self.train_counts = dict(train_counts or {})
        self.progress = progress or (lambda _: None)
        self.candidates: list[Candidate] = []
        # settings dropped because they send too many sentences to the LLM: (prompt, band, share)
        self.refused: list[tuple[dict[str, Any], Any, float]] = []
        self.calls_used = 0
        self.chosen_run: SLCoLMProgram | None = None  # the program whose guide run was chosen

    # ---- scoring -------------------------------------------------------------------------
    def _policies(self, gold: Sequence[Sentence], slm: Sequence[Sentence]) -> list[MergePolicy]:
        slm_dev = RelationEvaluator(gold, self.schema, "paper")(slm)
        out: list[MergePolicy] = []
        for kind in self.space.policies:
            if kind == "mode-2":
                out += [MergePolicy("mode-2", threshold=t) for t in self.space.mode2_thresholds]
            elif kind in ("mode-3", "mode-3-clean"):
                rules = {r.name: r for r in load_w_rules()}
                for name in self.space.w_rules:
                    if name not in rules:
                        raise SlcolmError(
                            f"unknown W rule {name!r}; optimize/merge_rules.toml has {', '.join(rules)}"
                        )
                    w = choose_w(rules[name], self.schema, slm_dev, self.train_counts)
                    out.append(MergePolicy(kind, llm_types=tuple(w), rule=name))
            elif kind != "per-type":  # learned per sample, below
                out.append(MergePolicy(kind))
        return out

    def _offline(
        self, program: SLCoLMProgram, outcome: GuideOutcome, gold: Sequence[Sentence], run_calls: int
    ) -> list[Candidate]:
        """Every offline setting for one guide run, best first."""
        space, config = self.space, program.config
        evaluator = RelationEvaluator(gold, self.schema, "paper")
        prompt = {k: getattr(config, k) for k in space.prompt}
        views = []
        strategy = strategy_for(config)
        thresholds = strategy.threshold_options(space.threshold_sets(), config.thresholds)
        route_options = strategy.route_options(space.route_sentences)
        for band, limits, route_sentences in itertools.product(space.bands(), thresholds, route_options):
            view_config = replace(config, routing=band, thresholds=limits, route_sentences=route_sentences)
            view, share = llm_view(outcome, view_config)
            if self.share_of is not None:
                share = self.share_of(view_config)
            if share > space.max_llm_share:
                self.refused.append((prompt, band, share))
                continue
            views.append((ranking_key(evaluator(view)), view_config, view, share))
        views.sort(key=lambda v: v[0], reverse=True)
        rows: list[Candidate] = []
        number = len(self.candidates)

        def add(
            view_config: GuideConfig | None, policy: MergePolicy, share: float, records: Sequence[Sentence]
        ):
            result = evaluator(records)
            rows.append(
                Candidate(
                    number + len(rows),
                    prompt,
                    view_config.routing if view_config else None,
                    view_config.thresholds if view_config and strategy.answers_have_thresholds else None,
                    bool(view_config and view_config.route_sentences),
                    policy,
                    share,
                    result["macro_f1"],
                    result["micro_f1"],
                    ranking_key(result),
                    run_calls if not rows else 0,
                )
            )

        policies = self._policies(gold, outcome.slm)
        if "slm" in space.policies or not views:
            add(None, MergePolicy("slm"), 0.0, outcome.slm)
        for _, view_config, view, share in views[: space.views_kept]:
            for policy in policies:
                if policy.kind == "slm":
                    continue
                add(view_config, policy, share, policy.apply_all(view, outcome.slm))
            if "per-type" in space.policies:
                merged = cross_fitted(gold, view, outcome.slm, self.schema, folds=space.folds)
                add(view_config, MergePolicy("per-type", rule="cross-fitted"), share, merged)
        # on a tie the SLM alone wins: the LLM must earn its calls
        rows.sort(key=lambda c: (c.rank, c.policy.kind == "slm"), reverse=True)
        return rows

    # ---- the search ----------------------------------------------------------------------
    def _prompt_settings(self) -> list[tuple[str, Any]]:
        """Coordinate search order: every other value of every knob, one at a time."""
        return [(knob, value) for knob, values in self.space.prompt.items() for value in values[1:]]

    def narrowest_share(self, config: GuideConfig) -> tuple[float, RoutingSettings | None]:
        """The smallest share of sentences any routing setting of the space sends to the LLM
        with this program (from the SLM's scores alone), and the band that gives it; (0, None)
        without `share_of`, when shares are only known after the run."""
        if self.share_of is None:
            return 0.0, None
        strategy = strategy_for(config)
        options = [
            (self.share_of(replace(config, routing=band, route_sentences=route)), band)
            for band in self.space.bands()
            for route in strategy.route_options(self.space.route_sentences)
        ]
        return min(options, key=lambda o: o[0])

    def _fits(self, config: GuideConfig) -> bool:
        """Whether some routing setting keeps this program under the share cap; a program that
        cannot is refused before any LLM call is spent on it."""
        share, band = self.narrowest_share(config)
        if share <= self.space.max_llm_share:
            return True
        prompt = {k: getattr(config, k) for k in self.space.prompt}
        self.refused.append((prompt, band, share))
        self.progress(
            f"{_describe(prompt)}: refused before any LLM call: its narrowest routing sends {share:.0%}"
            f" of dev sentences to the LLM, over the {self.space.max_llm_share:.0%} cap"
        )
        return False

    def _starting_point(self, student: SLCoLMProgram) -> GuideConfig:
        """The search's first setting: the first value of every knob, with the first module that
        fits under the share cap; none fits: a one-line error, before any LLM call."""
        space = self.space
        base = replace(
            student.config,
            **{k: v[0] for k, v in space.prompt.items()},
            routing=space.probe_routing(),
            route_sentences=False,  # the run asks about every sentence; views choose
        )
        starts = [replace(base, module=m) for m in space.prompt.get("module", [base.module])]
        for config in starts:
            if self._fits(config):
                return config
        share, band = min((self.narrowest_share(c) for c in starts), key=lambda n: n[0])
        raise SlcolmError(
            f"no setting of preset {space.name!r} keeps the LLM under {space.max_llm_share:.0%} of dev"
            f" sentences: the narrowest sends {share:.0%} ({_band(band)}); no LLM call was made. Raise"
            " max_llm_share in the preset, or train an SLM that is surer of its pairs"
        )

    def _run(self, program: SLCoLMProgram, records: Sequence[Sentence]) -> list[Candidate] | None:
        if not self._fits(program.config):
            return []
        if self.calls_used >= self.space.budget_calls:
            self.progress(f"budget of {self.space.budget_calls} LLM calls spent: stopping the search")
            return None
        outcome, calls = self.runner(program, records)
        self.calls_used += calls
        rows = self._offline(program, outcome, records, calls)
        self.candidates.extend(rows)
        best = rows[0]
        self.progress(
            f"{_describe(best.prompt)}: best macro-F1 {best.macro_f1:.4f} ({best.policy.label}), "
            f"{calls} LLM calls, {self.calls_used}/{self.space.budget_calls} used"
        )
        return rows

    def compile(
        self,
        student: SLCoLMProgram,
        *,
        trainset: Sequence[dspy.Example | Sentence],
        teacher: Any = None,
        valset: Any = None,
        **kwargs: Any,
    ) -> SLCoLMProgram:
        """Candidates are scored by corpus F1 on `valset` when given, else on `trainset` (the dev
        sample: gold records, or examples carrying them as `record`). The compiled program carries
        what the search saw: `candidates` (the table) and `calls_used`; the search keeps
        `chosen_run`, the program whose guide run was chosen (not a part of the compiled state)."""
        scored_on = valset if valset is not None else trainset
        records = [e if isinstance(e, Sentence) else e.record for e in scored_on]
        if not records:
            raise SlcolmError("the optimizer needs at least one dev sentence")
        space = self.space
        current = student.deepcopy()
        current.config = self._starting_point(student)
        best_rows = self._run(current, records)
        if best_rows is None:
            raise SlcolmError("the LLM call budget is 0: nothing to compile")
        best_program, best = current, best_rows[0]
        for knob, value in self._prompt_settings():
            trial = best_program.deepcopy()
            trial.config = replace(best_program.config, **{knob: value})
            if trial.config == best_program.config:  # the start took this value already
                continue
            rows = self._run(trial, records)
            if rows is None:
                break
            if rows and rows[0].rank > best.rank:
                best_program, best = trial, rows[0]
        if space.dspy_optimizer != "none" and strategy_for(best_program.config).tunable_predictor:
            for trial in self._dspy_optimized(best_program, records):
                rows = self._run(trial, records)
                if rows and rows[0].rank > best.rank:
                    best_program, best = trial, rows[0]
        best.chosen = True
        self.chosen_run = best_program
        compiled = self._finalise(best_program, best, records)
        compiled.candidates = list(self.candidates)
        compiled.calls_used = self.calls_used
        return compiled

    def policies_for(self, compiled: SLCoLMProgram, records: Sequence[Sentence]) -> list[MergePolicy]:
        """The best policy of each kind on the compiled program's reading of the chosen run (the
        rows `slcolm evaluate --program` shows beside the compiled policy)."""
        config = compiled.config
        chosen = next(c for c in self.candidates if c.chosen)
        best: dict[str, Candidate] = {}
        for c in self.candidates:
            if c.prompt != chosen.prompt or c.policy.kind == "slm" or c.routing != config.routing:
                continue
            if strategy_for(config).answers_have_thresholds and c.thresholds != config.thresholds:
                continue
            if c.route_sentences != config.route_sentences:
                continue
            if c.policy.kind not in best or c.rank > best[c.policy.kind].rank:
                best[c.policy.kind] = c
        out = []
        for kind, candidate in best.items():
            policy = candidate.policy
            if kind == "per-type":
                outcome, _ = self.runner(self.chosen_run, records)
                view, _ = llm_view(outcome, config)
                policy = learn_per_type(records, view, outcome.slm, self.schema)
            out.append(policy)
        return out

    def _finalise(
        self, program: SLCoLMProgram, best: Candidate, records: Sequence[Sentence]
    ) -> SLCoLMProgram:
        """The program with the chosen settings. When the SLM alone wins, the LLM settings kept are
        those of the best candidate that used the LLM: extraction then makes no LLM call, and
        evaluation can still show what the LLM rows would have been."""
        compiled = program.deepcopy()
        config = compiled.config
        reading = best
        if best.policy.kind == "slm":
            same_run = [c for c in self.candidates if c.prompt == best.prompt and c.routing is not None]
            reading = max(same_run, key=lambda c: c.rank, default=best)
        if reading.routing is not None:
            config = replace(config, routing=reading.routing, route_sentences=reading.route_sentences)
        if reading.thresholds is not None:
            config = replace(config, thresholds=reading.thresholds)
        policy = best.policy
        if policy.kind == "per-type":  # scored cross-fitted; the policy kept is learned on the whole sample
            outcome, _ = self.runner(program, records)  # the run is complete: read back, no new calls
            view, _ = llm_view(outcome, config)
            policy = learn_per_type(records, view, outcome.slm, self.schema)
        compiled.config = config
        compiled.policy = policy
        return compiled

    def _dspy_optimized(self, program: SLCoLMProgram, records: Sequence[Sentence]) -> list[SLCoLMProgram]:
        """Trial programs from one of DSPy's own optimizers on the tunable predictor: fixed gold
        demonstrations (labeled, bootstrap) or instructions rewritten by reflection (gepa). GEPA
        ranks by a per-sentence score; its best candidates are returned so that the search
        scores each the way it scores everything, by corpus F1 of the merged output."""
        from slcolm_dspy.program.examples import extraction_examples, triple_f1, triple_feedback

        name = strategy_for(program.config).tunable_predictor
        assert name is not None
        examples = extraction_examples(self.runner, program.deepcopy(), records)
        k, which = self.space.dspy_demos, self.space.dspy_optimizer
        if which in ("labeled", "bootstrap"):
            optimizer: Teleprompter = (
                dspy.LabeledFewShot(k=k)
                if which == "labeled"
                else dspy.BootstrapFewShot(metric=triple_f1, max_bootstrapped_demos=k, max_labeled_demos=k)
            )
            trial = program.deepcopy()
            setattr(trial, name, optimizer.compile(getattr(trial, name), trainset=examples))
            self.progress(f"DSPy {which} few-shot: {k} demonstrations fixed in the predictor")
            return [trial]
        if which != "gepa":
            raise SlcolmError(f"unknown dspy_optimizer {which!r}; choose none, labeled, bootstrap or gepa")
        lm = getattr(self.runner, "lm", None)
        if lm is None:
            raise SlcolmError("dspy_optimizer gepa needs the runner's LM (it reflects with the task's LLM)")
        gepa = dspy.GEPA(
            metric=triple_feedback,
            reflection_lm=lm,  # the task's own LLM: a hosted model is asked to rewrite its instruction
            max_metric_calls=self.space.gepa_metric_calls,
            reflection_minibatch_size=min(3, len(examples)),
            track_stats=True,
            use_merge=False,
            num_threads=1,
            seed=0,
        )
        # GEPA asks with the adapter the guide uses, and its calls count against the search's budget
        history_before = len(lm.history)
        with dspy.context(lm=lm, adapter=make_adapter(program.config.adapter, self.schema)):
            tuned = gepa.compile(getattr(program.deepcopy(), name), trainset=examples, valset=examples)
        self.calls_used += len(lm.history) - history_before
        found = tuned.detailed_results
        # candidate 0 is GEPA's seed, the program the search has already scored
        proposed = sorted(range(1, len(found.candidates)), key=lambda i: -found.val_aggregate_scores[i])
        trials = []
        for i in proposed[: self.space.gepa_candidates]:
            trial = program.deepcopy()
            setattr(trial, name, found.candidates[i])
            trials.append(trial)
        self.progress(
            f"DSPy GEPA: {len(found.candidates)} instruction candidates, {len(trials)} scored by corpus F1"
        )
        return trials


def _describe(prompt: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in prompt.items())


def candidate_table_rows(candidates: Sequence[Candidate], limit: int = 15) -> list[Candidate]:
    """The best `limit` rows, plus the chosen one and the SLM row wherever they rank."""
    ranked = sorted(candidates, key=lambda c: c.rank, reverse=True)
    keep = ranked[:limit]
    for extra in (
        next((c for c in ranked if c.chosen), None),
        next((c for c in ranked if c.policy.kind == "slm"), None),
    ):
        if extra is not None and extra not in keep:
            keep.append(extra)
    return keep
