"""Model invariants: the ICD-10-CM code an episode may carry."""

import pytest
from django.core.exceptions import ValidationError

from orthoreg.registry import coding
from orthoreg.registry.models import Episode


@pytest.mark.parametrize("code, condition, site, side, problem", [
    ("M20.21", "hallux_rigidus", "first_mtp", "right", ""),                 # derived: fits
    ("M76.50", "tendinopathy", "knee", "right", ""),                        # unmapped condition, free code
    ("M17.11", "tendinopathy", "knee", "right", "is the code for unilateral primary osteoarthritis, right knee"),
    ("Z99.9", "hallux_rigidus", "first_mtp", "bilateral", "expected M20.x"),  # no bilateral code is mapped
    ("M20.2", "hallux_rigidus", "first_mtp", "bilateral", ""),
    ("hello", "other", "knee", "left", "is not an ICD-10-CM code"),
    ("M17.12", "oa_primary", "knee", "bilateral", "is a left code"),
])
def test_icd10_problem(code, condition, site, side, problem):
    found = coding.icd10_problem(code, condition, site, side)
    assert (problem in found) if problem else found == ""


def test_an_edit_to_another_condition_refuses_the_old_code(episode):
    knee = Episode.objects.create(patient=episode.patient, body_site="knee", side="right", condition="oa_primary")
    assert knee.icd10_code == "M17.11"
    knee.condition = "tendinopathy"
    with pytest.raises(ValidationError) as error:
        knee.full_clean()
    assert "icd10_code" in error.value.message_dict
    knee.icd10_code = ""
    knee.full_clean()


def test_each_mapped_code_means_one_condition_site_and_side():
    assert len(set(coding._ICD10.values())) == len(coding._ICD10)
