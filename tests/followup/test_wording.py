"""The treated joint in the patient's words, for every site and side (issue 11.14)."""

import pytest

from orthoreg.followup.wording import joint_words
from orthoreg.registry.coding import BodySite, Side

EXPECTED = {
    ("first_mtp", "right"): "your right big toe", ("first_mtp", "left"): "your left big toe",
    ("first_mtp", "bilateral"): "both your big toes", ("first_mtp", "na"): "your big toe",
    ("ankle", "left"): "your left ankle", ("ankle", "bilateral"): "both your ankles",
    ("knee", "right"): "your right knee", ("knee", "bilateral"): "both your knees",
    ("hip", "left"): "your left hip", ("hip", "bilateral"): "both your hips",
    ("shoulder", "right"): "your right shoulder", ("shoulder", "bilateral"): "both your shoulders",
    ("elbow", "left"): "your left elbow", ("elbow", "bilateral"): "both your elbows",
    ("wrist_hand", "right"): "your right wrist or hand", ("wrist_hand", "bilateral"): "both your wrists or hands",
    ("lumbar_spine", "na"): "your lower back", ("cervical_spine", "na"): "your neck",
    ("other", "na"): "your treated area", ("other", "right"): "your treated area on the right side",
    ("other", "bilateral"): "both your treated areas",
}
JARGON = ("mtp", "metatarsophalangeal", "lumbar", "cervical", "spine", "bilateral", "not applicable", "first ",
          "/", "_", " na", "other")


@pytest.mark.parametrize("site", BodySite.values)
@pytest.mark.parametrize("side", Side.values)
def test_every_site_and_side_in_plain_words(site, side):
    words = joint_words(site, side)
    assert words == EXPECTED.get((site, side), words)
    assert words.startswith(("your ", "both your ")) and words == words.strip()
    assert not any(term in words.lower() for term in JARGON), words
    if side in ("left", "right") and site not in ("lumbar_spine", "cervical_spine"):
        assert side in words
    if side == "bilateral" and site not in ("lumbar_spine", "cervical_spine"):
        assert words.startswith("both your ")


def test_every_site_has_its_words():
    assert {site for site, _ in EXPECTED} == set(BodySite.values)
