"""The patient's words for the treated joint, on survey pages and in emails: "your right big toe", never
"first MTP joint"."""

from __future__ import annotations

from orthoreg.registry.coding import BodySite, Side

# site -> (one, both): how a patient names the place, and both of them when the episode is bilateral.
_PLAIN: dict[str, tuple[str, str]] = {
    BodySite.FIRST_MTP: ("big toe", "big toes"),
    BodySite.ANKLE: ("ankle", "ankles"),
    BodySite.KNEE: ("knee", "knees"),
    BodySite.HIP: ("hip", "hips"),
    BodySite.SHOULDER: ("shoulder", "shoulders"),
    BodySite.ELBOW: ("elbow", "elbows"),
    BodySite.WRIST_HAND: ("wrist or hand", "wrists or hands"),
    BodySite.LUMBAR_SPINE: ("lower back", "lower back"),
    BodySite.CERVICAL_SPINE: ("neck", "neck"),
    BodySite.OTHER: ("treated area", "treated areas"),
}
_UNSIDED = {BodySite.LUMBAR_SPINE, BodySite.CERVICAL_SPINE}


def joint_words(body_site: str, side: str) -> str:
    """The site and side in plain words, after "about" or "is": "your right big toe", "both your knees",
    "your lower back". The spine has no side; a side missing or unknown is left out."""
    one, both = _PLAIN.get(body_site, _PLAIN[BodySite.OTHER])
    if body_site in _UNSIDED:
        return f"your {one}"
    if side == Side.BILATERAL:
        return f"both your {both}"
    if side in (Side.LEFT, Side.RIGHT):
        if body_site == BodySite.OTHER:
            return f"your treated area on the {side} side"
        return f"your {side} {one}"
    return f"your {one}"


def episode_words(episode) -> str:
    return joint_words(episode.body_site, episode.side)
