"""{% load instruments_tags %}{% episode_outcomes episode %}: each instrument's trajectory for an episode."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse

from ..selectors import episode_trajectories

register = template.Library()


def entry_url(patient_id: int, episode_id: int | None = None, instrument: str = "") -> str:
    """The staff entry page, with the episode (and instrument) chosen."""
    params = {k: v for k, v in (("episode", episode_id), ("instrument", instrument)) if v}
    url = reverse("instruments:response_new", args=[patient_id])
    return f"{url}?{urlencode(params)}" if params else url


@register.inclusion_tag("instruments/_episode_outcomes.html")
def episode_outcomes(episode):
    trajectories = episode_trajectories(episode)
    return {
        "episode": episode,
        "outcomes": [
            {"t": t, "chart_url": reverse("instruments:episode_chart", args=[episode.pk, t.code, "svg"]),
             "entry_url": entry_url(episode.patient_id, episode.pk, t.code)}
            for t in trajectories
        ],
        "entry_url": entry_url(episode.patient_id, episode.pk),
        "responses_url": reverse("instruments:episode_responses", args=[episode.pk]),
    }
