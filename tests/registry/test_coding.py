"""ICD-10-CM derivation against the CDC's table (DOMAIN.md section 2).

The table: the CDC's ICD-10-CM release as shipped offline by PyPI `simple-icd-10-cm` (the test extra).
ICD-10-CM has no bilateral code for hallux rigidus or for osteoarthritis of the ankle and foot: both sides are
coded (M20.21 + M20.22). Knee and hip have bilateral codes (M17.0, M16.0).
"""

import pytest
import simple_icd_10_cm as cm

from orthoreg.registry import coding, services
from orthoreg.registry.coding import BodySite, Condition, Side
from orthoreg.registry.models import Episode


def test_every_mapped_code_is_a_valid_billable_leaf_with_our_label():
    for code in {*coding._ICD10.values(), *coding.ICD10_LABELS}:
        assert cm.is_valid_item(code) and cm.is_leaf(code), code
        assert coding.ICD10_LABELS[code] == cm.get_description(code), code


@pytest.mark.parametrize(("condition", "site", "codes"), [
    ("hallux_rigidus", "first_mtp", ["M20.21", "M20.22"]),
    ("oa_primary", "first_mtp", ["M19.071", "M19.072"]),
    ("oa_primary", "ankle", ["M19.071", "M19.072"]),
    ("oa_post_traumatic", "ankle", ["M19.171", "M19.172"]),
    ("oa_secondary", "first_mtp", ["M19.271", "M19.272"]),
    ("oa_primary", "knee", ["M17.0"]),
    ("oa_primary", "hip", ["M16.0"]),
])
def test_a_bilateral_condition_gets_both_sides_unless_icd10_cm_has_a_bilateral_code(condition, site, codes):
    assert coding.icd10_codes_for(condition, site, "bilateral") == codes
    for code in codes:
        assert cm.is_leaf(code)


def test_every_lateral_combination_that_has_a_right_and_left_code_has_a_bilateral_coding():
    for condition in Condition:
        for site in coding.LATERAL_SITES:
            right, left = (coding.icd10_codes_for(condition, site, s) for s in ("right", "left"))
            if right and left:
                assert coding.icd10_codes_for(condition, site, "bilateral"), (condition, site)


def test_no_mapping_is_unreachable():
    """Every (condition, site group, side) in the table can be chosen on a valid episode."""
    for (condition, group, side) in coding._ICD10:
        sites = {"foot": coding.FOOT_SITES, "lumbar": {BodySite.LUMBAR_SPINE}}.get(group, {group})
        reachable = False
        for site in sites:
            episode = Episode(body_site=site, side=side, condition=condition)
            try:
                episode.clean()
                reachable = True
            except Exception as exc:
                errors = getattr(exc, "message_dict", {})
                reachable = reachable or not ({"side", "body_site"} & set(errors))
        assert reachable, (condition, group, side)


def test_a_bilateral_episode_stores_and_lists_both_codes(patient):
    episode = services.episode_create(patient=patient, body_site=BodySite.FIRST_MTP, side=Side.BILATERAL,
                                      condition=Condition.HALLUX_RIGIDUS)
    episode.refresh_from_db()
    assert episode.icd10_code == "M20.21, M20.22"
    assert episode.icd10_codes == ["M20.21", "M20.22"]
    assert episode.icd10_label == "Hallux rigidus, right foot; Hallux rigidus, left foot"


def test_both_codes_typed_in_another_shape_are_accepted_and_one_side_alone_is_refused(patient):
    episode = Episode(patient=patient, body_site="first_mtp", side="bilateral", condition="hallux_rigidus",
                      icd10_code="m20.21;M20.22")
    episode.full_clean()
    assert episode.icd10_code == "M20.21, M20.22"
    episode.icd10_code = "M20.21"
    with pytest.raises(Exception) as info:
        episode.full_clean()
    assert "M20.21, M20.22" in str(info.value)


# --- CPT joint injection codes against the image guidance recorded ------------------------------------------------

@pytest.mark.parametrize(("code", "guidance", "ok"), [
    ("20604", "ultrasound", True), ("20604", "fluoroscopy", False), ("20604", "none", False),
    ("20600", "none", True), ("20600", "fluoroscopy", True), ("20600", "ultrasound", False),
    ("20605", "none", True), ("20606", "ultrasound", True), ("20606", "fluoroscopy", False),
    ("20605", "ultrasound", False), ("20611", "fluoroscopy", False), ("20610", "fluoroscopy", True),
    ("0232T", "fluoroscopy", True), ("", "ultrasound", True),
])
def test_cpt_guidance_rule(code, guidance, ok):
    assert (coding.cpt_guidance_problem(code, guidance) == "") is ok


def test_our_labels_say_without_ultrasound_not_no_imaging():
    for code in ("20600", "20605", "20610"):
        assert "without ultrasound guidance" in coding.CPT_LABELS[code] and "no imaging" not in coding.CPT_LABELS[code]
    for code in ("20604", "20606", "20611"):
        assert "with ultrasound guidance" in coding.CPT_LABELS[code]
    assert coding.joint_injection_cpt(BodySite.ANKLE, "ultrasound") == "20606"
    assert coding.joint_injection_cpt(BodySite.ANKLE, "fluoroscopy") == "20605"
    assert coding.joint_injection_cpt(BodySite.FIRST_MTP, "none") == "20600"
    assert coding.joint_injection_cpt(BodySite.KNEE, "ultrasound") == "20611"


def test_procedure_entry_refuses_an_ultrasound_code_with_fluoroscopy(clinician_client, episode):
    from django.urls import reverse
    from django.utils import timezone

    from orthoreg.registry.models import Procedure
    url = reverse("registry:procedure_create", args=[episode.pk])
    data = {"date": timezone.localdate().isoformat(), "kind": "bmc", "target_structure": "joint",
            "image_guidance": "fluoroscopy", "cpt_code": "20604", "nsaid_use": "unknown",
            "anticoagulant_use": "unknown", "steroid_use": "unknown"}
    response = clinician_client.post(url, data)
    assert response.status_code == 400
    assert response.context["form"].errors["cpt_code"] == [coding.cpt_guidance_problem("20604", "fluoroscopy")]
    assert "use 20600 (without ultrasound guidance)" in response.content.decode()
    assert not Procedure.objects.exists()
    response = clinician_client.post(url, {**data, "cpt_code": "20600"})
    assert response.status_code == 302
    assert Procedure.objects.get().cpt_code == "20600"


def test_synthetic_procedures_carry_the_code_of_their_guidance_and_joint(db):
    from orthoreg.registry.models import Clinic, Procedure
    from orthoreg.site.synth import Generator
    Generator(clinics=[Clinic.objects.create(code="s", name="S")], seed=3).run(120, batch_size=120)
    injections = Procedure.objects.filter(cpt_code__in=coding.CPT_WITH_ULTRASOUND | coding.CPT_WITHOUT_ULTRASOUND)
    assert injections.filter(image_guidance="fluoroscopy").exists()
    for p in injections.select_related("episode"):
        assert coding.cpt_guidance_problem(p.cpt_code, p.image_guidance) == "", (p.cpt_code, p.image_guidance)
        assert p.cpt_code == coding.joint_injection_cpt(p.episode.body_site, p.image_guidance)
