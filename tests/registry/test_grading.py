"""The Coughlin-Shurnas calculator at every boundary of DOMAIN.md section 1.

Source: Coughlin MJ, Shurnas PS. Hallux rigidus: grading and long-term results of operative treatment.
J Bone Joint Surg Am 2003;85-A:2072-2088, Table 1 as reproduced in World J Orthop 2014;5(1):6-13 and
2017;8(5):364-371.
"""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.registry import grading
from orthoreg.registry.grading import GradeInputError, coughlin_shurnas


@pytest.mark.parametrize(("degrees", "grade"), [
    (60, 0), (40.01, 0), (40, 1), (30.01, 1), (30, 2), (10.01, 2), (10, 3), (0, 3), (-5, 3),
])
def test_motion_boundaries_are_half_open(degrees, grade):
    assert grading.motion_grade_from_dorsiflexion(degrees) == grade


@pytest.mark.parametrize(("loss", "grade"), [
    (0, 0), (19.99, 0), (20, 1), (49.99, 1), (50, 2), (74.99, 2), (75, 3), (100, 3),
])
def test_loss_boundaries_are_half_open(loss, grade):
    assert grading.motion_grade_from_loss(loss) == grade


def test_loss_is_computed_from_both_sides():
    result = coughlin_shurnas(dorsiflexion=20, other_side_dorsiflexion=70)
    assert result.loss_percent == 71.4
    assert result.domains["motion"] == 2  # 20 deg -> 2, 71% loss -> 2


def test_motion_uses_the_higher_of_degrees_and_loss_and_says_so():
    result = coughlin_shurnas(dorsiflexion=45, other_side_dorsiflexion=80)  # 0 by degrees, 44% loss -> 1
    assert result.domains["motion"] == 1
    assert any("higher is used" in f for f in result.flags)


def test_suggests_the_highest_domain_and_flags_discordance():
    result = coughlin_shurnas(dorsiflexion=35, radiograph=2, clinical=3)
    assert result.grade == 3
    assert result.discordant is True
    assert result.domains == {"motion": 1, "radiograph": 2, "clinical": 3}


def test_concordant_domains_are_not_flagged():
    result = coughlin_shurnas(dorsiflexion=20, radiograph=2, clinical=2)
    assert result.grade == 2
    assert result.discordant is False
    assert result.flags == []


def test_grade_4_is_grade_3_findings_plus_mid_range_pain():
    assert coughlin_shurnas(dorsiflexion=5, radiograph=3, clinical=3, midrange_pain=True).grade == 4
    assert coughlin_shurnas(dorsiflexion=5, radiograph=3, clinical=3).grade == 3


# Table 1, one row per grade: motion in degrees, % loss, radiograph and clinical findings typical of the grade.
@pytest.mark.parametrize(("dorsi", "loss", "rad", "clin", "mid", "grade"), [
    (50, 15, 0, 0, False, 0),
    (35, 35, 1, 1, False, 1),
    (20, 60, 2, 2, False, 2),
    (5, 90, 3, 3, False, 3),
    (5, 90, 3, 3, True, 4),
])
def test_each_row_of_the_published_table(dorsi, loss, rad, clin, mid, grade):
    result = coughlin_shurnas(dorsiflexion=dorsi, loss=loss, radiograph=rad, clinical=clin, midrange_pain=mid)
    assert result.grade == grade
    assert result.discordant is False


@pytest.mark.parametrize(("dorsi", "loss", "grade"), [(40, 20, 1), (30, 50, 2), (10, 75, 3)])
def test_a_boundary_goes_the_same_way_for_degrees_and_loss(dorsi, loss, grade):
    """Each boundary of the table in degrees with its boundary in % loss: the same grade, no false disagreement."""
    result = coughlin_shurnas(dorsiflexion=dorsi, loss=loss, radiograph=grade, clinical=grade)
    assert result.domains["motion"] == grade
    assert result.discordant is False
    assert result.flags == []


def test_40_degrees_against_20_percent_from_the_other_side_does_not_disagree():
    result = coughlin_shurnas(dorsiflexion=40, other_side_dorsiflexion=50, radiograph=1)
    assert result.loss_percent == 20.0
    assert result.grade == 1
    assert result.discordant is False
    assert result.flags == []


def test_clinical_findings_alone_never_make_grade_4():
    """The reported case: clinical 3 + mid-range pain with 35 degrees and radiograph 1 was suggested grade 4."""
    result = coughlin_shurnas(dorsiflexion=35, radiograph=1, clinical=3, midrange_pain=True)
    assert result.grade == 3
    assert any("grade 4 needs both" in f for f in result.flags)
    assert coughlin_shurnas(clinical=3, midrange_pain=True).grade == 3


@pytest.mark.parametrize("kwargs", [
    {"dorsiflexion": 5, "radiograph": 2},  # grade-3 motion, grade-2 radiograph
    {"dorsiflexion": 20, "radiograph": 3},  # grade-2 motion, grade-3 radiograph
    {"radiograph": 3, "clinical": 3},  # motion not known
    {"dorsiflexion": 5, "clinical": 3},  # radiograph not known
])
def test_grade_4_needs_grade_3_motion_and_radiograph(kwargs):
    assert coughlin_shurnas(midrange_pain=True, **kwargs).grade == 3


def test_plantar_flexion_is_an_input_noted_with_grade_3():
    result = coughlin_shurnas(dorsiflexion=5, plantar_flexion=8, radiograph=3)
    assert result.grade == 3
    assert any("Plantar flexion 8° (≤ 10°) also fits grade 3" in f for f in result.flags)
    other = coughlin_shurnas(dorsiflexion=45, plantar_flexion=5)
    assert any("check the motion" in f for f in other.flags)
    assert coughlin_shurnas(dorsiflexion=5, plantar_flexion=30).flags == []
    assert grading.suggest("coughlin_shurnas", {"dorsiflexion": 5, "plantar_flexion": 8}).flags
    with pytest.raises(GradeInputError) as info:
        coughlin_shurnas(plantar_flexion=400)
    assert info.value.field == "plantar_flexion"


def test_mid_range_pain_without_grade_3_findings_is_flagged_not_graded_4():
    result = coughlin_shurnas(dorsiflexion=35, radiograph=1, clinical=1, midrange_pain=True)
    assert result.grade == 1
    assert any("grade 4 needs both" in f for f in result.flags)


def test_joint_after_cheilectomy_is_flagged():
    result = coughlin_shurnas(radiograph=2, prior_cheilectomy=True)
    assert any("cheilectomy" in f for f in result.flags)


def test_no_domain_gives_no_suggestion():
    result = coughlin_shurnas()
    assert result.grade is None
    assert result.flags


@pytest.mark.parametrize("kwargs", [{"dorsiflexion": 400}, {"radiograph": 4}, {"clinical": -1}, {"loss": 101},
                                    {"dorsiflexion": 10, "other_side_dorsiflexion": 0}])
def test_out_of_range_inputs_are_refused_with_the_field(kwargs):
    with pytest.raises(GradeInputError) as info:
        coughlin_shurnas(**kwargs)
    assert info.value.field in kwargs


def test_kellgren_lawrence_reading_is_the_suggestion():
    assert grading.suggest("kellgren_lawrence", {"kl_grade": 3}).grade == 3
    with pytest.raises(GradeInputError):
        grading.suggest("kellgren_lawrence", {"kl_grade": 5})


@given(dorsi=st.floats(-30, 120), rad=st.none() | st.integers(0, 3), clin=st.none() | st.integers(0, 3),
       mid=st.booleans())
def test_suggestion_is_a_grade_and_never_below_any_domain(dorsi, rad, clin, mid):
    result = coughlin_shurnas(dorsiflexion=dorsi, radiograph=rad, clinical=clin, midrange_pain=mid)
    assert 0 <= result.grade <= 4
    assert all(result.grade >= g for g in result.domains.values() if g is not None)


@given(a=st.floats(-30, 120), b=st.floats(-30, 120))
def test_less_motion_never_gives_a_lower_grade(a, b):
    low, high = sorted([a, b])
    assert grading.motion_grade_from_dorsiflexion(low) >= grading.motion_grade_from_dorsiflexion(high)
