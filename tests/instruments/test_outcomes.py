"""The episode_outcomes tag, trajectories in words, and the charts (SVG for pages, PNG for PDFs)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template import Context, Template
from django.utils import timezone

from orthoreg.instruments import charts, selectors
from orthoreg.instruments.definitions import get_definition
from orthoreg.instruments.scoring import global_improvement_answers
from orthoreg.instruments.services import response_record

pytestmark = pytest.mark.django_db


def record(patient, episode, code, answers, time_point, days_ago):
    return response_record(patient=patient, episode=episode, instrument=code, answers=answers,
                           time_point=time_point, completed_at=timezone.now() - dt.timedelta(days=days_ago))


@pytest.fixture
def df_series(patient, episode):
    """DF's pain: baseline 7, then 1, 3 and 6 months down to 3; her global improvement answers."""
    for tp, days, pain, better in (("baseline", 190, 7, None), ("1m", 150, 5, 20), ("3m", 90, 4, 40),
                                   ("6m", 7, 3, 60)):
        record(patient, episode, "nprs", [pain], tp, days)
        if better is not None:
            record(patient, episode, "global-improvement", global_improvement_answers(better), tp, days)
    return episode


def render(episode):
    return Template("{% load instruments_tags %}{% episode_outcomes episode %}").render(Context({"episode": episode}))


def test_tag_renders_each_instrument_with_words_chart_and_entry_link(df_series, patient):
    html = render(df_series)
    assert "Pain 7 → 3, 57% better" in html
    assert "Improvement: 60% better at 6 months" in html
    assert html.count('<img class="chart"') == 2
    assert f'src="/instruments/episodes/{df_series.pk}/charts/nprs.svg"' in html
    assert "better by more than the MCID" in html
    assert f"/instruments/patients/{patient.pk}/responses/new/?episode={df_series.pk}" in html
    assert 'alt="Pain over time: Baseline 7, 1 month 5, 3 months 4, 6 months 3."' in html
    assert "style=" not in html and "<script" not in html
    assert html.index("Pain 7") < html.index("Improvement:")  # shipped order: nprs first


def test_tag_without_responses(episode):
    html = render(episode)
    assert "No questionnaire responses for this episode yet." in html and "Enter a response" in html


def test_unscored_responses_are_counted_not_plotted(patient, episode):
    record(patient, episode, "faam-sports", [4] * 8, "baseline", 100)
    record(patient, episode, "faam-sports", [4] * 6 + [None, None], "3m", 10)
    [t] = selectors.episode_trajectories(episode)
    assert len(t.points) == 1 and t.unscored == 1
    assert "(1 response not scored)" in render(episode)


def test_words_for_a_higher_is_better_scale(patient, episode):
    record(patient, episode, "faam-adl", [2] * 21, "baseline", 100)
    record(patient, episode, "faam-adl", [3] * 21, "6m", 5)
    [t] = selectors.episode_trajectories(episode)
    assert t.words == "FAAM ADL 50 → 75, 25 points better" and t.beyond_mcid is True


def test_words_when_worse_and_within_mcid(patient, episode):
    record(patient, episode, "nprs", [4], "baseline", 100)
    record(patient, episode, "nprs", [5], "3m", 5)
    [t] = selectors.episode_trajectories(episode)
    assert t.words == "Pain 4 → 5, 25% worse" and t.mcid_verdict == "within"
    record(patient, episode, "nprs", [8], "6m", 1)
    [t] = selectors.episode_trajectories(episode)
    assert t.mcid_verdict == "worsened" and "worse by more than the MCID" in render(episode)


def test_words_with_a_single_point(patient, episode):
    record(patient, episode, "nprs", [6], "baseline", 3)
    assert selectors.episode_trajectories(episode)[0].words == "Pain 6 at baseline"


def test_chart_formats(df_series):
    traj = selectors.trajectory_of(get_definition("nprs"), selectors.episode_responses(df_series, "nprs"))
    svg = charts.trajectory_chart(traj, "svg")
    assert svg.startswith(b"<?xml") and b"<script" not in svg
    assert charts.trajectory_chart(traj, "png").startswith(b"\x89PNG")
    with pytest.raises(ValueError):
        charts.trajectory_chart(traj, "gif")


def test_chart_of_an_empty_trajectory():
    traj = selectors.Trajectory(code="nprs", title="Pain", subscale=get_definition("nprs").primary)
    assert charts.trajectory_chart(traj, "svg").startswith(b"<?xml")
