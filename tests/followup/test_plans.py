"""The queries that complete a response's assessment and close its invitations read an episode's rows by the
episode, never every scheduled assessment or open invitation of the registry (SQLite's plans, which do not depend
on the tables' sizes; it chose the status index and read every scheduled assessment per chunk of an import, and per
submission: an import of 5,000 patients spent 20 s there)."""

from __future__ import annotations

import pytest
from django.db import connection

from orthoreg.followup.services import answers

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plans (PostgreSQL's: statistics)")


def test_an_episodes_open_assessments_are_read_by_episode(db):
    text = answers.open_assessments([1, 2, 3]).explain()
    assert "SEARCH followup_assessment USING INDEX followup_assessment_episode (episode_id=? AND status=?)" in text, \
        text


def test_answered_invitations_are_found_by_episode(db):
    text = answers.answered_invitations(episode_id__in=[1, 2]).explain()
    assert "SEARCH followup_invitation USING INDEX followup_invitation_episode (episode_id=? AND status=?)" in text, \
        text
    assert "(status=?)" not in text, text
