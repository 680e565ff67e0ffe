"""{% url_ids %} (registry/templatetags/id_urls.py) gives exactly what {% url %} gives, whatever the ids."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.urls import NoReverseMatch, clear_script_prefix, reverse, set_script_prefix

from orthoreg.registry.templatetags.id_urls import url_ids

CASES = [("registry:patient_detail", (7,)), ("registry:patient_detail", (0,)), ("registry:grade_edit", (12, 345)),
         ("registry:adverse_event_edit", (918273645546370001, 5)), ("followup:assessment_enter", (99999999999,)),
         ("reports:case", (3,))]


@pytest.mark.parametrize("name,ids", CASES)
def test_the_same_as_reverse(name, ids):
    assert url_ids(name, *ids) == reverse(name, args=list(ids))
    assert url_ids(name, *ids) == url_ids(name, *ids)  # the second call uses the pieces kept by the first


def test_under_a_script_prefix_and_in_a_template():
    set_script_prefix("/registry-a/")
    try:
        assert url_ids("registry:grade_edit", 1, 2) == reverse("registry:grade_edit", args=[1, 2])
        assert url_ids("registry:grade_edit", 1, 2).startswith("/registry-a/")
    finally:
        clear_script_prefix()
    assert not url_ids("registry:grade_edit", 1, 2).startswith("/registry-a/")
    both = Template("{% load id_urls %}{% url_ids 'registry:grade_edit' a b %}|{% url 'registry:grade_edit' a b %}")
    first, second = both.render(Context({"a": 4, "b": 56})).split("|")
    assert first == second


def test_what_is_not_an_id_goes_through_reverse():
    assert url_ids("registry:patient_detail", "12") == reverse("registry:patient_detail", args=["12"])
    with pytest.raises(NoReverseMatch):
        url_ids("registry:patient_detail", -1)
    with pytest.raises(NoReverseMatch):
        url_ids("registry:patient_detail", True)
    with pytest.raises(NoReverseMatch):
        url_ids("registry:no_such_view", 1)
