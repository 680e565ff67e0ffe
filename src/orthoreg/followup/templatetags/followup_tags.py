from django import template
from django.utils import timezone

from orthoreg.followup import selectors

register = template.Library()


@register.inclusion_tag("followup/_episode_assessments.html")
def episode_assessments(episode):
    rows = selectors.episode_assessments(episode)
    today = timezone.localdate()
    statuses = [a.display_status for a in rows]
    return {"rows": rows, "today": today, "completed": statuses.count("completed"),
            "due": sum(1 for a in rows if a.due_date <= today and a.status != "cancelled"),
            "missed": statuses.count("missed"), "open_count": statuses.count("due") + statuses.count("overdue")}
