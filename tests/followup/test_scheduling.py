"""Schedule arithmetic (month ends, leap years), re-planning, cancellation."""

import datetime as dt

import pytest
import time_machine
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from orthoreg.followup import scheduling, services
from orthoreg.followup.models import Assessment, Protocol
from orthoreg.registry import services as registry


@pytest.mark.parametrize(("start", "months", "expected"), [
    (dt.date(2025, 1, 31), 1, dt.date(2025, 2, 28)),
    (dt.date(2024, 1, 31), 1, dt.date(2024, 2, 29)),  # leap year
    (dt.date(2024, 2, 29), 12, dt.date(2025, 2, 28)),
    (dt.date(2024, 2, 29), 48, dt.date(2028, 2, 29)),
    (dt.date(2025, 8, 31), 6, dt.date(2026, 2, 28)),
    (dt.date(2025, 11, 30), 3, dt.date(2026, 2, 28)),
    (dt.date(2025, 12, 15), 1, dt.date(2026, 1, 15)),
    (dt.date(2025, 3, 31), -1, dt.date(2025, 2, 28)),
])
def test_add_months_clamps_to_month_end(start, months, expected):
    assert scheduling.add_months(start, months) == expected


@given(st.dates(min_value=dt.date(1950, 1, 1), max_value=dt.date(2090, 1, 1)), st.integers(0, 120))
def test_add_months_properties(day, months):
    later = scheduling.add_months(day, months)
    assert (later.year - day.year) * 12 + later.month - day.month == months
    assert later.day <= day.day


def test_plan_windows():
    specs = scheduling.default_specs()
    planned = {(p.time_point, p.instrument): p for p in scheduling.plan(dt.date(2024, 8, 31), specs)}
    six = planned[("6m", "nprs")]
    assert six.due_date == dt.date(2025, 2, 28)
    assert six.window_start == dt.date(2025, 1, 31) and six.window_end == dt.date(2025, 4, 11)
    assert planned[("6w", "nprs")].due_date == dt.date(2024, 10, 12)
    assert planned[("baseline", "nprs")].window_start == dt.date(2024, 8, 1)


def test_default_protocols_exist(db):
    assert Protocol.objects.filter(condition="hallux_rigidus", body_site="first_mtp", clinic=None).exists()
    assert Protocol.objects.get(condition="oa_primary", body_site="knee").time_points.count() == 9


@time_machine.travel(dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC), tick=False)
def test_index_procedure_schedules_assessments(episode):
    registry.procedure_record(episode=episode, date=dt.date(2024, 2, 29), kind="bmc", is_index=True)
    rows = Assessment.objects.filter(episode=episode)
    assert rows.count() == sum(len(tp[5]) for tp in scheduling.DEFAULT_TIME_POINTS)
    assert rows.get(time_point="12m", instrument="nprs").due_date == dt.date(2025, 2, 28)
    assert rows.get(time_point="48m", instrument="nprs").due_date == dt.date(2028, 2, 29)


def test_replanning_is_idempotent_and_moves_unsent_ones(index_procedure):
    episode = index_procedure.episode
    n = Assessment.objects.filter(episode=episode).count()
    assert n > 0
    services.episode_schedule(episode=episode)
    services.episode_schedule(episode=episode)
    assert Assessment.objects.filter(episode=episode).count() == n
    done = Assessment.objects.get(episode=episode, time_point="baseline", instrument="nprs")
    done.status, done.completed_at = Assessment.Status.COMPLETED, dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    done.save()
    old_due = done.due_date
    new_day = index_procedure.date + dt.timedelta(days=10)
    registry.procedure_record(episode=episode, instance=index_procedure, date=new_day)
    done.refresh_from_db()
    assert done.due_date == old_due and done.status == "completed"  # completed ones untouched
    moved = Assessment.objects.get(episode=episode, time_point="24m", instrument="nprs")
    assert moved.due_date == scheduling.add_months(new_day, 24)
    assert Assessment.objects.filter(episode=episode).count() == n


def test_protocol_change_cancels_and_adds(index_procedure):
    episode = index_procedure.episode
    protocol = Protocol.objects.get(condition="hallux_rigidus", clinic=None)
    protocol.time_points.filter(label="60m").delete()
    tp = protocol.time_points.get(label="6m")
    tp.instruments = ["nprs", "sane", "global-improvement", "satisfaction", "faam-adl"]
    tp.save()
    result = services.episode_schedule(episode=episode)
    gone = Assessment.objects.filter(episode=episode, time_point="60m")
    assert all(a.status == "cancelled" and a.cancelled_reason == "no longer in the protocol" for a in gone)
    assert Assessment.objects.filter(episode=episode, time_point="6m", instrument="faam-adl").exists()
    assert result.created == 1 and result.cancelled == gone.count()


def test_withdrawal_cancels_pending_with_reason(index_procedure):
    """Everything still answerable on the day is cancelled: the 6-month time point (due 18 days before, its window
    still open) as well as those to come. What closed before stays as it was (missed)."""
    patient = index_procedure.episode.patient
    today = timezone.localdate()
    registry.patient_update(patient=patient, status="withdrawn", status_date=today)
    pending = Assessment.objects.filter(episode=index_procedure.episode, window_end__gte=today)
    assert pending.filter(time_point="6m", due_date__lt=today).exists()
    assert all(a.status == "cancelled" and "withdrawn" in a.cancelled_reason for a in pending)
    closed = Assessment.objects.filter(episode=index_procedure.episode, window_end__lt=today)
    assert closed.exists() and {a.status for a in closed} == {"scheduled"}


def test_conversion_to_surgery_stops_follow_up(index_procedure):
    """A time point whose window is open on the day of the surgery stops too (the 3-month one, due before it)."""
    episode = index_procedure.episode
    fusion_day = index_procedure.date + dt.timedelta(days=100)
    registry.procedure_record(episode=episode, date=fusion_day, kind="first_mtp_arthrodesis")
    later = Assessment.objects.filter(episode=episode, window_end__gte=fusion_day)
    assert later.filter(time_point="3m", due_date__lt=fusion_day).exists()
    assert all("converted to surgery" in a.cancelled_reason for a in later)
    earlier = Assessment.objects.filter(episode=episode, window_end__lt=fusion_day)
    assert earlier.exists() and all(a.status == "scheduled" for a in earlier)




def test_conversion_can_continue_follow_up(index_procedure):
    Protocol.objects.filter(condition="hallux_rigidus").update(stop_on_conversion=False)
    episode = index_procedure.episode
    registry.procedure_record(episode=episode, date=index_procedure.date + dt.timedelta(days=100),
                              kind="first_mtp_arthrodesis")
    assert not Assessment.objects.filter(episode=episode, status="cancelled").exists()


def edit_page_data(client, protocol: Protocol, delete: tuple[str, ...] = (), **fields) -> dict:
    """What the protocol's edit page posts unchanged (every time point as it is, the empty extra form with its
    initial values, as a browser posts it), with `fields` changed and the time points labelled in `delete` ticked
    for deletion."""
    from django.urls import reverse

    form = client.get(reverse("followup:protocol_edit", args=[protocol.pk])).context
    data = {k: v for k, v in form["form"].initial.items() if v is not None}
    data.update({"active": "on", "stop_on_conversion": "on"})
    data.update(fields)
    formset = form["formset"]
    data.update({"tp-TOTAL_FORMS": str(len(formset.forms)), "tp-INITIAL_FORMS": str(formset.initial_form_count()),
                 "tp-MIN_NUM_FORMS": "0", "tp-MAX_NUM_FORMS": "1000"})
    for i, tf in enumerate(formset.forms):
        if not tf.instance.pk:
            for name in ("offset_months", "offset_days", "window_before_days", "window_after_days", "order"):
                data[f"tp-{i}-{name}"] = tf[name].value()
            continue
        for name in ("label", "offset_months", "offset_days", "window_before_days", "window_after_days", "order"):
            data[f"tp-{i}-{name}"] = getattr(tf.instance, name)
        data[f"tp-{i}-id"] = tf.instance.pk
        data[f"tp-{i}-instruments"] = list(tf.instance.instruments)
        if tf.instance.label in delete:
            data[f"tp-{i}-DELETE"] = "on"
    return data


def test_changing_a_protocols_condition_replans_the_episodes_it_governed(clinician_client, index_procedure):
    from django.urls import reverse

    episode = index_procedure.episode
    network = Protocol.objects.get(clinic=None, condition="hallux_rigidus")
    clinician_client.post(reverse("followup:protocol_copy", args=[network.pk]))
    own = Protocol.objects.get(clinic=episode.patient.clinic)
    services.episode_schedule(episode=episode)
    assert set(Assessment.objects.filter(episode=episode).values_list("protocol_id", flat=True)) == {own.pk}
    data = edit_page_data(clinician_client, own, condition="oa_primary", body_site="knee")
    saved = clinician_client.post(reverse("followup:protocol_edit", args=[own.pk]), data)
    assert saved.status_code == 302
    # The toe episode is governed again by the network protocol that fits it, not by a knee protocol.
    scheduled = Assessment.objects.filter(episode=episode, status="scheduled")
    assert scheduled.exists() and set(scheduled.values_list("protocol_id", flat=True)) == {network.pk}


def test_protocol_editor_copies_edits_and_replans(clinician_client, index_procedure):
    from django.urls import reverse

    episode = index_procedure.episode
    network = Protocol.objects.get(clinic=None, condition="hallux_rigidus")
    page = clinician_client.get(reverse("followup:protocol_list"))
    assert page.status_code == 200 and network.name in page.content.decode()
    assert clinician_client.get(reverse("followup:protocol_edit", args=[network.pk])).status_code == 404
    response = clinician_client.post(reverse("followup:protocol_copy", args=[network.pk]))
    own = Protocol.objects.get(clinic=episode.patient.clinic)
    assert response["Location"] == reverse("followup:protocol_edit", args=[own.pk])
    data = edit_page_data(clinician_client, own, delete=("60m",), name="Our hallux protocol")
    saved = clinician_client.post(reverse("followup:protocol_edit", args=[own.pk]), data)
    assert saved.status_code == 302, (saved.context["form"].errors, [e for e in saved.context["formset"].errors if e],
                                      saved.context["formset"].non_form_errors())
    gone = Assessment.objects.filter(episode=episode, time_point="60m")
    assert gone.exists() and {a.status for a in gone} == {"cancelled"}
    assert Assessment.objects.filter(episode=episode, time_point="24m", status="scheduled").exists()
    assert Assessment.objects.filter(episode=episode, time_point="24m").first().protocol_id == own.pk
