"""The Coughlin-Shurnas calculator at every boundary of DOMAIN.md section 1."""

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
    (0, 0), (20, 0), (20.01, 1), (50, 1), (50.01, 2), (75, 2), (75.01, 3), (100, 3),
])
def test_loss_boundaries_are_half_open(loss, grade):
    assert grading.motion_grade_from_loss(loss) == grade


def test_loss_is_computed_from_both_sides():
    result = coughlin_shurnas(dorsiflexion=20, other_side_dorsiflexion=80)
    assert result.loss_percent == 75.0
    assert result.domains["motion"] == 2  # 20 deg -> 2, 75% loss -> 2


def test_motion_uses_the_higher_of_degrees_and_loss_and_says_so():
    result = coughlin_shurnas(dorsiflexion=45, other_side_dorsiflexion=90)  # 0 by degrees, 50% loss -> 1
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
