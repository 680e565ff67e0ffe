from . import access as acl


def access(request):
    """Template flags saying which parts of the site the user may reach."""
    user = getattr(request, "user", None)
    return {
        "can_clinical": acl.has_capability(user, acl.CLINICAL),
        "can_contact": acl.has_capability(user, acl.CONTACT),
        "can_research": acl.has_capability(user, acl.RESEARCH),
        "can_audit": acl.has_capability(user, acl.AUDIT),
    }
