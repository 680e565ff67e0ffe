"""Writes of the analytics app (the rest of it is read-only)."""

from __future__ import annotations

import hashlib

from django.db import IntegrityError, transaction

from .models import ReleasedCohort


def release_digest(members: set[int] | frozenset[int]) -> str:
    return hashlib.sha256(",".join(map(str, sorted(members))).encode()).hexdigest()


def release_record(*, user, members: set[int] | frozenset[int]) -> None:
    """Remember that the figures of the cohort `members` were shown to `user` (once per distinct cohort)."""
    digest = release_digest(members)
    if ReleasedCohort.objects.filter(user=user, digest=digest).exists():
        return
    try:
        with transaction.atomic():
            ReleasedCohort.objects.create(user=user, size=len(members), digest=digest, members=sorted(members))
    except IntegrityError:  # the same cohort recorded by a parallel request
        pass
