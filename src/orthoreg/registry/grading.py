"""Grade calculators. Pure functions, no database.

Coughlin-Shurnas hallux rigidus grade (J Bone Joint Surg Am 2003;85-A:2072-2088), as DOMAIN.md section 1
describes it: each domain (motion, radiograph, clinical) is graded on its own with half-open boundaries,
the suggestion is the highest domain grade, disagreeing domains are flagged, grade 4 is grade-3 findings
plus pain at mid-range of passive motion, and a joint after cheilectomy is flagged because the osteophyte
criteria no longer mean the same. The clinician's grade is the one of record; this only suggests.

Tie-break at the published table's overlapping boundaries (30 and 10 degrees; 20, 50 and 75 % loss): a boundary
value goes to the WORSE grade in every domain, as the table itself does where it is explicit ("<= 10 deg" and
"75-100 %" loss are grade 3). So 40 degrees and 20 % loss are both grade 1 and do not disagree.

Grade 4 (Coughlin & Shurnas 2003, Table 1 as reproduced in World J Orthop 2014;5(1):6-13 and 2017;8(5):364-371):
the grade-3 motion AND the grade-3 radiograph findings, plus definite pain at mid-range of passive motion.
Clinical findings alone never make grade 4. Grade 3 also notes plantar flexion often <= 10 degrees; plantar
flexion is recorded and noted beside the motion grade (it does not change the grade).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

RADIOGRAPH_FINDINGS = {
    0: "Normal",
    1: "Dorsal osteophyte is the main finding; minimal narrowing, sclerosis or head flattening",
    2: "Dorsal, lateral ± medial osteophytes, flattened head, ≤ 1/4 of dorsal joint on lateral view; "
       "mild-moderate narrowing and sclerosis; sesamoids spared",
    3: "As grade 2 with substantial narrowing, possible cysts, > 1/4 of dorsal joint involved, sesamoid changes",
}
CLINICAL_FINDINGS = {
    0: "No pain; stiffness only",
    1: "Mild or occasional pain and stiffness at extremes of motion",
    2: "Moderate to severe pain and stiffness, may be constant; pain just before maximum dorsiflexion and plantar flexion",
    3: "Nearly constant pain and stiffness at extremes, not at mid-range",
}


class GradeInputError(ValueError):
    """Raised with a field name and a message when an input is out of range."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass
class GradeSuggestion:
    system: str
    grade: int | None
    domains: dict[str, int | None] = field(default_factory=dict)
    discordant: bool = False
    flags: list[str] = field(default_factory=list)
    loss_percent: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def motion_grade_from_dorsiflexion(degrees: float) -> int:
    """>40 -> 0, (30,40] -> 1, (10,30] -> 2, <=10 -> 3: a boundary value goes to the worse grade."""
    if degrees > 40:
        return 0
    if degrees > 30:
        return 1
    if degrees > 10:
        return 2
    return 3


def motion_grade_from_loss(percent: float) -> int:
    """<20 -> 0, [20,50) -> 1, [50,75) -> 2, >=75 -> 3: a boundary value goes to the worse grade, as for degrees."""
    if percent < 20:
        return 0
    if percent < 50:
        return 1
    if percent < 75:
        return 2
    return 3


PLANTAR_FLEXION_GRADE_3 = 10  # grade 3: "plantar flexion often <= 10 degrees too"


def loss_percent(dorsiflexion: float, other_side: float) -> float:
    """Loss of dorsiflexion relative to the other side, in percent (0 when this side moves as much or more)."""
    if other_side <= 0:
        raise GradeInputError("other_side_dorsiflexion", "must be greater than 0 degrees to compare against")
    return max(0.0, (other_side - dorsiflexion) / other_side * 100.0)


def _check_range(name: str, value, low: float, high: float) -> None:
    if value is None:
        return
    if not (low <= value <= high):
        raise GradeInputError(name, f"{value} is outside {low:g} to {high:g}")


def coughlin_shurnas(
    *,
    dorsiflexion: float | None = None,
    other_side_dorsiflexion: float | None = None,
    loss: float | None = None,
    radiograph: int | None = None,
    clinical: int | None = None,
    midrange_pain: bool = False,
    prior_cheilectomy: bool = False,
    plantar_flexion: float | None = None,
) -> GradeSuggestion:
    """Suggest a Coughlin-Shurnas grade from whatever domains are known.

    dorsiflexion: first MTP dorsiflexion in degrees; other_side_dorsiflexion gives the loss percent;
    loss: the loss percent directly (used when the other side's degrees are not known);
    radiograph / clinical: the finding category 0-3 (RADIOGRAPH_FINDINGS / CLINICAL_FINDINGS);
    plantar_flexion: first MTP plantar flexion in degrees (grade 3 notes it is often <= 10 degrees).
    """
    _check_range("dorsiflexion", dorsiflexion, -30, 120)
    _check_range("plantar_flexion", plantar_flexion, -30, 90)
    _check_range("other_side_dorsiflexion", other_side_dorsiflexion, -30, 120)
    _check_range("loss", loss, 0, 100)
    _check_range("radiograph", radiograph, 0, 3)
    _check_range("clinical", clinical, 0, 3)

    flags: list[str] = []
    if dorsiflexion is not None and other_side_dorsiflexion is not None:
        computed = loss_percent(dorsiflexion, other_side_dorsiflexion)
        if loss is not None and abs(loss - computed) > 1:
            flags.append(f"Loss entered ({loss:g}%) differs from loss computed from both sides ({computed:.0f}%); "
                         "the computed value is used.")
        loss = computed

    motion_parts = []
    if dorsiflexion is not None:
        motion_parts.append(motion_grade_from_dorsiflexion(dorsiflexion))
    if loss is not None:
        motion_parts.append(motion_grade_from_loss(loss))
    motion = max(motion_parts) if motion_parts else None
    if len(motion_parts) == 2 and motion_parts[0] != motion_parts[1]:
        flags.append(f"Dorsiflexion suggests grade {motion_parts[0]}, loss versus the other side suggests "
                     f"grade {motion_parts[1]}; the higher is used for motion.")

    domains = {"motion": motion, "radiograph": radiograph, "clinical": clinical}
    known = [g for g in domains.values() if g is not None]
    if not known:
        return GradeSuggestion(system="coughlin_shurnas", grade=None, domains=domains,
                               flags=["Enter at least one domain (motion, radiograph or clinical) for a suggestion."],
                               loss_percent=loss)

    grade = max(known)
    discordant = len(set(known)) > 1
    if discordant:
        parts = ", ".join(f"{name} {g}" for name, g in domains.items() if g is not None)
        flags.append(f"Domains disagree ({parts}); the highest is suggested. Check the findings.")
    if midrange_pain:
        if motion == 3 and radiograph == 3:
            grade = 4
        else:
            shown = ", ".join(f"{name} {'not given' if domains[name] is None else domains[name]}"
                              for name in ("motion", "radiograph"))
            flags.append("Pain at mid-range of passive motion, but grade 4 needs both grade-3 motion and grade-3 "
                         f"radiograph findings as well ({shown}): grade 4 needs both.")
    if plantar_flexion is not None and plantar_flexion <= PLANTAR_FLEXION_GRADE_3:
        if motion == 3:
            flags.append(f"Plantar flexion {plantar_flexion:g}° (≤ {PLANTAR_FLEXION_GRADE_3}°) also fits grade 3.")
        else:
            flags.append(f"Plantar flexion {plantar_flexion:g}° is ≤ {PLANTAR_FLEXION_GRADE_3}°, as in grade 3, "
                         "but dorsiflexion does not suggest grade 3: check the motion.")
    if prior_cheilectomy:
        flags.append("Joint after cheilectomy: osteophyte-based radiograph criteria no longer mean the same.")
    return GradeSuggestion(system="coughlin_shurnas", grade=grade, domains=domains, discordant=discordant,
                           flags=flags, loss_percent=None if loss is None else round(loss, 1))


def kellgren_lawrence(*, grade: int | None) -> GradeSuggestion:
    """Kellgren-Lawrence is read straight off the radiograph: the suggestion is the reading itself."""
    _check_range("kl_grade", grade, 0, 4)
    return GradeSuggestion(system="kellgren_lawrence", grade=grade, domains={"radiograph": grade})


def suggest(system: str, inputs: dict) -> GradeSuggestion:
    """Dispatch on the grading system with a dict of inputs (as stored on a Grade)."""
    if system == "coughlin_shurnas":
        keys = ("dorsiflexion", "other_side_dorsiflexion", "loss", "radiograph", "clinical",
                "midrange_pain", "prior_cheilectomy", "plantar_flexion")
        return coughlin_shurnas(**{k: inputs.get(k) for k in keys if inputs.get(k) is not None})
    if system == "kellgren_lawrence":
        return kellgren_lawrence(grade=inputs.get("kl_grade"))
    raise GradeInputError("system", f"unknown grading system {system!r}")
