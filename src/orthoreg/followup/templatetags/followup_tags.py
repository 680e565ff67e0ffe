from django import template
from django.utils import timezone

from orthoreg.followup import selectors, wording
from orthoreg.instruments.definitions import UnknownInstrument, get_definition
from orthoreg.instruments.types import DefinitionError

register = template.Library()


@register.inclusion_tag("followup/_episode_assessments.html")
def episode_assessments(episode):
    rows = selectors.episode_assessments(episode)
    today = timezone.localdate()
    statuses = [a.display_status for a in rows]
    return {"rows": rows, "today": today, "completed": statuses.count("completed"),
            "due": sum(1 for a in rows if a.due_date <= today and a.status != "cancelled"),
            "missed": statuses.count("missed"), "open_count": statuses.count("due") + statuses.count("overdue")}


@register.filter
def joint_words(episode) -> str:
    """{{ episode|joint_words }}: "your right big toe"."""
    return wording.episode_words(episode)


def _definition(code: str):
    try:
        return get_definition(code)
    except (UnknownInstrument, DefinitionError):
        return None


@register.filter
def instrument_name(code: str) -> str:
    """{{ "nprs"|instrument_name }}: "Pain" (the instrument's short name; the code if it has no definition)."""
    definition = _definition(code)
    return (definition.short_title or definition.title) if definition else code


@register.filter
def instrument_title(code: str) -> str:
    """{{ "nprs"|instrument_title }}: "Numeric pain rating (0 to 10)"."""
    definition = _definition(code)
    return definition.title if definition else code
