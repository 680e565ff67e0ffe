"""Scoring: one engine, driven by each definition's declared rule (DOMAIN.md section 3).

Answers are a list in item order; ``None`` means not applicable or unanswered. A choice item is answered
with its option's ordinal value, a number item with a number in its range. Anything else is an item error
and the result is invalid. Answers that are well formed but too few for a subscale's minimum leave that
subscale unscored; the result is valid when at least one subscale is scored.

The rules, by method (see each instrument's definition for which it uses):

* value                            NPRS (0-10), SANE (0-100), satisfaction (1-5), would repeat (1/0)
* signed_amount                    global improvement: +percent better, -percent worse, 0 about the same
* percent_of_answered_max          FAAM ADL / Sports: sum / (4 x answered) x 100, N/A excluded, at least 19 of 21
                                   ADL and 7 of 8 Sports items answered;
                                   MOXFQ domains: sum / max x 100 (all items of the domain answered)
* inverted_percent_of_answered_max FAOS / KOOS: 100 - mean x 25 per subscale, at least half its items answered
* sum                              LEFS: sum 0-80, all items answered
* mean                             mean of the answered items (REDCap mean() calculations)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .definitions import scoring_definition
from .types import Definition, Item, Subscale, format_number

Answer = int | float | None


@dataclass(frozen=True)
class ItemError:
    item: int  # 1-based
    reason: str
    link_id: str = ""

    def __str__(self) -> str:
        return f"item {self.item}: {self.reason}"

    def as_dict(self) -> dict:
        return {"item": self.item, "link_id": self.link_id, "reason": self.reason}


@dataclass
class ScoreResult:
    instrument: str
    version: str
    valid: bool
    scores: dict[str, float]
    primary: float | None
    primary_subscale: str
    reason: str = ""
    item_errors: list[ItemError] = field(default_factory=list)
    unscored: dict[str, str] = field(default_factory=dict)  # subscale -> why it has no score
    answers: list[Answer] = field(default_factory=list)  # normalised (only when there are no item errors)
    answered: int = 0

    def as_dict(self) -> dict:
        return {
            "instrument": self.instrument,
            "version": self.version,
            "valid": self.valid,
            "scores": dict(self.scores),
            "primary": self.primary,
            "primary_subscale": self.primary_subscale,
            "reason": self.reason,
            "item_errors": [e.as_dict() for e in self.item_errors],
            "unscored": dict(self.unscored),
            "answered": self.answered,
        }


def check_answer(item: Item, value) -> tuple[Answer, str]:
    """One answer normalised (ints stay ints), or the reason it is not acceptable ('' when fine)."""
    if value is None:
        return None, ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kinds = {bool: "true/false", str: "text", list: "a list", dict: "an object"}
        kind = kinds.get(type(value), type(value).__name__)
        shown = f" {value!r}" if isinstance(value, str) and len(value) <= 40 else ""
        return None, f"expected {item.describe_allowed()}; got {kind}{shown}"
    if not math.isfinite(value):
        return None, f"expected {item.describe_allowed()}; got {value}"
    if item.type == "choice":
        for option in item.scored_options:
            if value == option.value:
                return _tidy(option.value), ""
        return None, f"{format_number(value)} is not an answer to this item: expected {item.describe_allowed()}"
    if item.type == "integer" and not float(value).is_integer():
        return None, f"{format_number(value)} is not a whole number: expected {item.describe_allowed()}"
    if not item.minimum <= value <= item.maximum:
        return None, f"{format_number(value)} is out of range: expected {item.describe_allowed()}"
    return (int(value) if item.type == "integer" else _tidy(value)), ""


def _tidy(value: float) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value


def check_answers(definition: Definition, answers) -> tuple[list[Answer], list[ItemError]]:
    """Normalised answers and every item error (wrong count, wrong type, out of range, inconsistent)."""
    if not isinstance(answers, (list, tuple)):
        return [], [ItemError(1, "answers must be a list in item order (null for not applicable or unanswered)")]
    items = definition.items
    errors: list[ItemError] = []
    normal: list[Answer] = []
    for item, value in zip(items, answers):
        clean, reason = check_answer(item, value)
        normal.append(clean)
        if reason:
            errors.append(ItemError(item.number, reason, item.link_id))
    n = len(items)
    if len(answers) < n:
        given = f"{len(answers)} answer{'' if len(answers) == 1 else 's'} {'was' if len(answers) == 1 else 'were'}"
        errors.append(ItemError(len(answers) + 1, f"missing: {definition.code} has {n} items and {given} "
                                                   "given (use null for an unanswered item)",
                                items[len(answers)].link_id))
    elif len(answers) > n:
        errors.append(ItemError(n + 1, f"there is no item {n + 1}: {definition.code} has {n} items"))
    if not errors:
        errors.extend(_consistency_errors(definition, normal))
    return normal, errors


def _consistency_errors(definition: Definition, answers: list[Answer]) -> list[ItemError]:
    """Rules that tie items together (an amount given while the direction says about the same)."""
    errors = []
    for sub in definition.subscales:
        if sub.method == "signed_amount":
            direction, amount = (answers[i] for i in sub.items)
            if direction == 0 and amount not in (None, 0):
                item = definition.items[sub.items[1]]
                errors.append(ItemError(item.number, f"{format_number(amount)}% given, but item "
                                                     f"{sub.items[0] + 1} says about the same: leave it empty",
                                        item.link_id))
    return errors


def _subscale_score(sub: Subscale, items: tuple[Item, ...], answers: list[Answer]) -> tuple[float | None, str]:
    """(score, '') or (None, why it cannot be scored)."""
    if sub.method == "signed_amount":
        direction, amount = (answers[i] for i in sub.items)
        if direction is None:
            return None, f"item {sub.items[0] + 1} (better, same or worse) is unanswered"
        if direction == 0:
            return 0.0, ""
        if amount is None:
            return None, f"item {sub.items[1] + 1} (by how many percent) is unanswered"
        return float(direction * amount), ""
    answered = [(items[i], answers[i]) for i in sub.items if answers[i] is not None]
    total = len(sub.items)
    if len(answered) < sub.min_answered:
        if total == 1:
            return None, f"item {sub.items[0] + 1} is unanswered"
        need = "all of them" if sub.min_answered >= total else f"at least {sub.min_answered}"
        return None, f"{len(answered)} of {total} items answered; needs {need}"
    values = [float(v) for _, v in answered]
    if sub.method in ("value", "sum"):
        return sum(values), ""
    if sub.method == "mean":
        return sum(values) / len(values), ""
    low = sum(item.low for item, _ in answered)
    high = sum(item.high for item, _ in answered)
    percent = (sum(values) - low) / (high - low) * 100
    if sub.method == "inverted_percent_of_answered_max":
        return 100 - percent, ""
    return percent, ""  # percent_of_answered_max


def _round(value: float) -> float:
    rounded = round(value, 2)
    return 0.0 if rounded == 0 else rounded  # no -0.0


def score_definition(definition: Definition, answers) -> ScoreResult:
    normal, errors = check_answers(definition, answers)
    primary = definition.primary
    result = ScoreResult(instrument=definition.code, version=definition.version, valid=False, scores={},
                         primary=None, primary_subscale=primary.code if primary else "", item_errors=errors)
    if errors:
        result.reason = "; ".join(str(e) for e in errors)
        return result
    result.answers = normal
    result.answered = sum(a is not None for a in normal)
    if not definition.subscales:
        result.reason = f"{definition.code} has no scoring rule"
        return result
    for sub in definition.subscales:
        value, why = _subscale_score(sub, definition.items, normal)
        if value is None:
            result.unscored[sub.code] = why
        else:
            result.scores[sub.code] = _round(value)
    result.valid = bool(result.scores)
    result.primary = result.scores.get(result.primary_subscale)
    if result.unscored:
        parts = [f"{definition.subscale(code).title}: {why}" for code, why in result.unscored.items()]
        result.reason = ("not scored: " if not result.valid else "not all subscales scored: ") + "; ".join(parts)
    return result


def global_improvement_answers(percent_better: float | None) -> list[Answer]:
    """The answer list of global-improvement for a signed percent: 60 -> [1, 60] (60% better),
    -20 -> [-1, 20] (20% worse), 0 -> [0, None] (about the same), None -> [None, None]."""
    if percent_better is None:
        return [None, None]
    amount = round(min(100.0, abs(float(percent_better))))  # the amount item takes whole percents
    if amount == 0:
        return [0, None]
    return [1 if percent_better > 0 else -1, amount]


def score(code: str, answers: list) -> ScoreResult:
    """Score one answer set of an instrument. Raises definitions.UnknownInstrument for an unknown code."""
    return score_definition(scoring_definition(code), answers)
