"""Disclosure control for roles without clinical access (a researcher: access.research_needs_consent, marked on the
filters as `consented_only`). Such a role sees aggregates only, and no aggregate may single out a patient:

* no figure from a cohort of fewer than MIN_ESTIMATE_N patients (the small-number rule, summaries.too_few, the same
  limit as the public pages): the cohort is refused with a message instead of a report;
* treatment dates are filtered in whole months (filters.parse_filters rounds them and says so), so a single
  day's patient cannot be picked out;
* differencing: two cohorts that differ by 1 to 4 patients would give those patients' scores away by subtraction
  (A = men aged 40 or less, B = men aged 39 or less). A comparison of two such cohorts is refused, and so is any
  cohort that differs by 1 to 4 patients from a cohort whose figures this user was shown before (ReleasedCohort,
  the last RELEASE_DAYS days).

This does not stop users pooling what each was shown, or differences spread over three or more cohorts; the
registry's governance (who is given the researcher role) covers those.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from . import cohorts, services, summaries
from .filters import VS_PREFIX, CohortFilter, CohortFilterError
from .models import ReleasedCohort

RELEASE_DAYS = 90


def restricted(f: CohortFilter) -> bool:
    """A cohort asked for by a role without clinical access (its filters count consented patients only)."""
    return f.consented_only


def check(first: CohortFilter, second: CohortFilter | None, *, clinic_ids, user) -> None:
    """Refuse (CohortFilterError, one message per cohort) what would disclose a small group; else record the
    cohorts as shown to `user`. Does nothing for a role with clinical access."""
    if not restricted(first):
        return
    asked = [("", first)] + ([(VS_PREFIX, second)] if second is not None else [])
    members = {prefix: frozenset(cohorts.cohort_episodes(f, clinic_ids=clinic_ids).values_list("pk", flat=True))
               for prefix, f in asked}
    limit = summaries.MIN_ESTIMATE_N
    errors: dict[str, list[str]] = {}
    for prefix, m in members.items():
        if summaries.too_few(len(m)) and m:
            errors[f"{prefix}cohort"] = [
                f"Fewer than {limit} patients match this cohort. For your role no figures are shown from a cohort "
                f"this small; widen the filters."]
    if second is not None and not errors:
        apart = len(members[""] ^ members[VS_PREFIX])
        if 0 < apart < limit:
            errors[f"{VS_PREFIX}cohort"] = [
                f"The two cohorts differ by fewer than {limit} patients, so their difference would describe those "
                f"patients. Compare cohorts that differ by at least {limit}."]
    if not errors:
        for prefix, m in members.items():
            if m and _near_earlier(user, m):
                errors[f"{prefix}cohort"] = [
                    f"This cohort differs by fewer than {limit} patients from one whose figures you were shown "
                    f"in the last {RELEASE_DAYS} days, so comparing the two would describe those patients. "
                    f"Widen or change the filters."]
    if errors:
        raise CohortFilterError(errors)
    for m in members.values():
        if m:
            services.release_record(user=user, members=m)


def _near_earlier(user, m: frozenset[int]) -> bool:
    """Whether a cohort shown to `user` lately differs from `m` by 1 to 4 patients (only cohorts of a size within 4
    of it can)."""
    limit = summaries.MIN_ESTIMATE_N
    since = timezone.now() - dt.timedelta(days=RELEASE_DAYS)
    earlier = ReleasedCohort.objects.filter(user=user, created__gte=since, size__gt=len(m) - limit,
                                            size__lt=len(m) + limit).values_list("members", flat=True)
    return any(0 < len(m ^ frozenset(ids)) < limit for ids in earlier.iterator())
