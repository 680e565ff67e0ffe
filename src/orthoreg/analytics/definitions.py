"""What the numbers mean: eligibility, responder definitions, failure. Read by the code and printed in every report.

DOMAIN.md section 6 asks for success definitions side by side, each with numerator, denominator, Wilson 95% CI
and the worst case. The rules below are the registry's; a report states them next to its numbers.

Eligible (due) at a time point, for an instrument
    The episode has an assessment of that instrument at that time point (planned by its follow-up protocol),
    and either its answer window has closed (window end before the as-of date) or it has been answered; except
    assessments cancelled because the patient had died or withdrawn on or before the due date, and assessments
    cancelled because they were no longer part of the episode's protocol. Assessments cancelled after a
    conversion to surgery, or by staff, stay eligible: those patients were due and did not answer.

Responded
    Eligible and answered (the assessment is completed with a response). Scored: the response has a valid score.
    Completeness = responded / eligible. Responses recorded outside the schedule count once linked to their
    assessment (orthoreg.followup.services.link_responses).

Conversion to surgery (failure)
    The first surgical procedure (cheilectomy, fusion, arthroplasty, other surgery) of the episode dated after the
    index procedure, other than the index itself (orthoreg.registry.selectors.conversion_date_subquery).

Responder definitions, at a time point (each an episode-level yes / no / unknown):
    known failure   converted to surgery on or before the time point's due date (whatever was answered), or
                    answered with a score that does not meet the definition;
    known success   answered, not converted by the due date, and the definition is met;
    unknown         everything else that is eligible (not answered, or answered without what the definition
                    needs, e.g. no baseline score).
    rate            = successes / (successes + known failures), with the Wilson 95% interval;
    worst case      = successes / eligible (every unknown counted as a failure);
    best case       = (successes + unknown) / eligible.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# OMERACT-OARSI responder criteria (Pham T et al., Osteoarthritis Cartilage 2004;12:389-399) [verify]:
# the thresholds below are as commonly reproduced, not checked against the primary source. Override them with
# the setting ORTHOREG_ANALYTICS_OARSI = {"high_relative": ..., ...} (fractions and points on 0-100 scales).
OARSI_DEFAULTS = {
    "high_relative": 0.50,  # high improvement in pain or in function: >= 50% ...
    "high_absolute": 20.0,  # ... and >= 20 points on a 0-100 scale
    "moderate_relative": 0.20,  # improvement in at least two of pain, function, patient global: >= 20% ...
    "moderate_absolute": 10.0,  # ... and >= 10 points on a 0-100 scale
}
# The instruments standing for OARSI's three domains. "Function" is the first regional function score answered;
# "patient global" uses SANE (0-100 % of normal) as its proxy [verify]: OARSI's own global is a disease-activity VAS.
OARSI_PAIN = "nprs"
OARSI_FUNCTION = ("faam-adl", "lefs", "faam-sports")
OARSI_GLOBAL = "sane"

PAIN_INSTRUMENT = "nprs"
PAIN_REDUCTION = 0.50  # ">= 50% pain reduction" on NPRS


def oarsi_thresholds() -> dict[str, float]:
    overrides = getattr(settings, "ORTHOREG_ANALYTICS_OARSI", None) or {}
    unknown = set(overrides) - set(OARSI_DEFAULTS)
    if unknown:
        raise ValueError(f"ORTHOREG_ANALYTICS_OARSI: unknown keys {', '.join(sorted(unknown))}")
    return {**OARSI_DEFAULTS, **{k: float(v) for k, v in overrides.items()}}


@dataclass(frozen=True)
class ResponderDefinition:
    code: str
    title: str
    description: str
    source: str = ""
    verify: bool = False  # thresholds not checked against the primary source


PAIN_50 = ResponderDefinition(
    "pain_50", "≥ 50% less pain",
    "NPRS pain at the time point at most half of the baseline pain (baseline above 0).")
MCID = ResponderDefinition(
    "mcid", "≥ MCID",
    "Better than baseline by at least the instrument's minimal clinically important difference, in the direction "
    "that is better for that instrument (NPRS: 2 points or 30% of baseline).",
    "MCIDs as recorded in each instrument's definition (DOMAIN.md section 3).")
OARSI = ResponderDefinition(
    "omeract_oarsi", "OMERACT-OARSI",
    "High improvement (≥ 50% and ≥ 20/100) in pain or in function, or improvement (≥ 20% and ≥ 10/100) in at "
    "least two of pain (NPRS), function (regional score: FAAM ADL, LEFS) and patient global (SANE as proxy). "
    "A domain not answered at the time point counts as not improved.",
    "Pham T et al., Osteoarthritis Cartilage 2004;12:389-399 [verify thresholds]", verify=True)
NO_CONVERSION = ResponderDefinition(
    "no_conversion", "No conversion to surgery",
    "Not converted to surgery on or before the time point's due date. Worst case: only those who answered at "
    "the time point count as known to be free of surgery.")
PASS = ResponderDefinition(
    "pass", "PASS",
    "At or better than the patient acceptable symptom state: an absolute score at the time point (not a change) "
    "below which patients with the condition call their state acceptable. Only where a value is published for the "
    "instrument and the cohort's condition and site; the value and its source are in the instrument's definition.",
    "Tubach F et al., Ann Rheum Dis 2005;64:34-37 (knee osteoarthritis)")
DEFINITIONS = {d.code: d for d in (PAIN_50, MCID, OARSI, PASS, NO_CONVERSION)}

ELIGIBLE_TEXT = (
    "Eligible (due): an assessment of the instrument at the time point whose answer window has closed or that was "
    "answered; not counting assessments cancelled because the patient had died or withdrawn by the due date, or "
    "removed from the protocol. Those cancelled after a conversion to surgery or by staff stay eligible.")
RESPONDED_TEXT = "Responded: eligible and answered. Completeness = responded / eligible."
RATE_TEXT = (
    "Rates: successes / (successes + known failures) with the Wilson 95% interval. A conversion to surgery by the "
    "due date is a failure under every definition. Worst case: successes / eligible, every patient who did not "
    "answer counted as a failure. Best case: every such patient counted as a success.")
CONVERSION_TEXT = (
    "Conversion to surgery: the first surgical procedure of the episode after the index procedure (cheilectomy, "
    "fusion, arthroplasty or other surgery). Survival free of conversion: Kaplan-Meier from the index date, "
    "censored at the last contact (the patient's last questionnaire answer, the last exam or procedure of the "
    "episode, or the date of death or withdrawal), and at the as-of date for a conversion dated after it.")
ADVERSE_TEXT = (
    "Adverse events: episodes with at least one adverse event recorded on the index procedure or a later "
    "non-surgical procedure of the episode (complications of a conversion belong to that surgery), of all "
    "treated episodes.")


def _threat(share: float) -> int:
    """2: more than 20% lost, a serious threat; 1: 5% to 20%, can bias; 0: less (Schulz & Grimes)."""
    return 2 if share > 0.20 else 1 if share >= 0.05 else 0


def limits_sentence(*, lost: int, eligible: int, time_point_label: str, compared: bool = False) -> str:
    """The plain sentence on the limits every report carries."""
    share = f"{lost / eligible:.0%}" if eligible else "—"
    text = ("These are observational registry data, not a randomized trial: patients chose their treatment with "
            "their clinicians, so differences may reflect who was treated rather than the treatment.")
    if compared:
        text += " The two groups may differ in age, grade, activity and expectations; nothing here adjusts for that."
    if eligible:
        text += (f" At {time_point_label}, {lost} of {eligible} eligible patients ({share}) did not answer; "
                 "the worst case counts all of them as failures.")
        threat = _threat(lost / eligible)
        if threat == 2:
            text += " Losing more than 20% is a serious threat to these estimates (Schulz & Grimes)."
        elif threat == 1:
            text += " Losses between 5% and 20% can bias these estimates."
    return text


def comparison_limits_sentence(losses: list[tuple[str, int, int, str]]) -> str:
    """The limits of two cohorts compared, with each cohort's own loss to follow-up at its own headline time point
    (pooling them would hide a cohort that lost many behind one that lost few): `losses` is
    (label, lost, eligible, time point label) per cohort."""
    text = limits_sentence(lost=0, eligible=0, time_point_label="", compared=True)
    known = [(label, lost, eligible, tp) for label, lost, eligible, tp in losses if eligible]
    if not known:
        return text
    parts = [f"{label}: at {tp}, {lost} of {eligible} eligible patients ({lost / eligible:.0%}) did not answer"
             for label, lost, eligible, tp in known]
    text += " Lost to follow-up, " + "; ".join(parts) + "; the worst case counts all of them as failures."
    serious = [label for label, lost, eligible, _ in known if _threat(lost / eligible) == 2]
    biased = [label for label, lost, eligible, _ in known if _threat(lost / eligible) == 1]
    if serious:
        text += (f" Losing more than 20% ({' and '.join(serious)}) is a serious threat to these estimates "
                 "(Schulz & Grimes).")
    if biased:
        text += f" Losses between 5% and 20% ({' and '.join(biased)}) can bias these estimates."
    return text


COMPETING_SOURCE = "Clin Orthop Relat Res 2015;473:3431"


def competing_sentence(*, deaths: int, cut_days: float | None, min_at_risk: int) -> str:
    """Which curve of conversion to surgery a report shows and why (DOMAIN.md section 6, competing risks)."""
    if deaths:
        text = (f"{deaths} patient{'s' if deaths != 1 else ''} died without conversion to surgery. Someone who has died "
                "cannot have surgery, so 1 minus Kaplan-Meier (which treats a death like a patient merely lost) "
                "overstates how many will convert; the cumulative incidence of conversion shown here "
                "(Aalen-Johansen) counts death as a competing event "
                f"({COMPETING_SOURCE}). Withdrawal and loss to follow-up are censored.")
    else:
        text = ("No patient of this cohort has died, so the cumulative incidence of conversion (Aalen-Johansen, death "
                "as the competing event) equals 1 minus the Kaplan-Meier survival free of surgery; both are shown "
                f"({COMPETING_SOURCE}). Withdrawal and loss to follow-up are censored.")
    text += f" Curves stop where fewer than {min_at_risk} patients remain at risk"
    text += (" (here from the start: fewer were treated)." if cut_days == 0 else
             f" (here after {cut_days / (365.25 / 12):.1f} months)." if cut_days is not None else ".")
    return text
