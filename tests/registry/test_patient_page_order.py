"""DF's page leads with the episode she was treated for (issue 11 item 18): episodes by index procedure, the most
recently treated first, then the untreated ones by their latest entry."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from orthoreg.registry import selectors, services


def test_episodes_by_index_procedure_most_recent_first(clinician_client, patient):
    today = dt.date.today()
    back = services.episode_create(patient=patient, body_site="lumbar_spine", side="na", condition="low_back_pain")
    services.procedure_record(episode=back, date=today - dt.timedelta(days=900), kind="prp", is_index=True)
    toe = services.episode_create(patient=patient, body_site="first_mtp", side="right", condition="hallux_rigidus")
    services.procedure_record(episode=toe, date=today - dt.timedelta(days=200), kind="bmc", is_index=True)
    knee = services.episode_create(patient=patient, body_site="knee", side="left", condition="oa_primary")
    # created first, treated longest ago: the back came first before the fix
    order = [t.episode.pk for t in selectors.patient_timeline(patient)]
    assert order == [toe.pk, back.pk, knee.pk]
    html = clinician_client.get(reverse("registry:patient_detail", args=[patient.pk])).content.decode()
    assert html.index(f'id="episode-{toe.pk}"') < html.index(f'id="episode-{back.pk}"') < \
        html.index(f'id="episode-{knee.pk}"')
