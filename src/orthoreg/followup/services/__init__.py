"""Writes of the follow-up app, one module per concern; every function owns its transaction.

- schedule: planning and re-planning an episode's assessments, cancelling them
- protocols: saving and copying protocols, re-planning the episodes they apply to (in batches)
- invitations: planning invitations, their links, expiry, resend and revoke
- worker: claiming and sending invitations; the worker's pass and loop
- answers: a response completes its assessment and invitation; drafts; unsubscribing

The public names are re-exported here: `from orthoreg.followup import services; services.episode_schedule(...)`.
Reads (what a link still asks, which token is whose) are in orthoreg.followup.selectors.
"""

from django.core.exceptions import ValidationError

from ..models import hash_token
from ..selectors import LinkError, invitation_for_token, open_assessments
from .answers import (
    NOT_PENDING,
    assessment_answer,
    assessment_save_draft,
    episode_unsubscribe,
    link_responses,
    response_link,
    responses_link,
)
from .invitations import (
    invitation_resend,
    invitation_revoke,
    invitations_expire,
    invitations_plan,
    survey_url,
    token_issue,
    unsubscribe_url,
)
from .protocols import (
    PROTOCOL_FIELDS,
    REPLAN_BATCH,
    REPLAN_BATCH_SECONDS,
    REPLAN_INLINE,
    TIME_POINT_FIELDS,
    protocol_copy_for_clinic,
    protocol_save,
    replan_run,
    replan_step,
)
from .schedule import (
    REPLANNABLE,
    ScheduleResult,
    assessment_cancel,
    episode_schedule,
    episodes_schedule,
    patient_schedule,
    time_point_cancel,
)
from .worker import (
    HOST,
    LEASE,
    MAX_BACKOFF,
    POSSIBLY_SENT_NOTE,
    SendResult,
    invitations_claim,
    invitations_send,
    worker_loop,
    worker_pass,
)

__all__ = [
    "HOST", "LEASE", "MAX_BACKOFF", "NOT_PENDING", "POSSIBLY_SENT_NOTE", "PROTOCOL_FIELDS", "REPLANNABLE",
    "REPLAN_BATCH", "REPLAN_BATCH_SECONDS", "REPLAN_INLINE", "TIME_POINT_FIELDS", "LinkError", "ScheduleResult",
    "SendResult", "ValidationError", "assessment_answer", "assessment_cancel", "assessment_save_draft",
    "episode_schedule", "episode_unsubscribe", "episodes_schedule", "hash_token", "invitation_for_token",
    "invitation_resend", "invitation_revoke", "invitations_claim", "invitations_expire", "invitations_plan",
    "invitations_send", "link_responses", "open_assessments", "patient_schedule", "protocol_copy_for_clinic",
    "protocol_save", "replan_run", "replan_step", "response_link", "responses_link", "survey_url", "time_point_cancel", "token_issue",
    "unsubscribe_url", "worker_loop", "worker_pass",
]
