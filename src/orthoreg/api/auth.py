"""Authentication of the API: a bearer token (api.tokens) beside the site's session.

A token acts as its user: request.user is set to it, so the services' audit entries, the access functions and
the middleware that logs reads of patient records all see the token's user, with exactly that user's roles and
clinics. A refused token answers 401 with the reason (unknown, expired, revoked) and is audited.
"""

from __future__ import annotations

from ninja.security import HttpBearer, django_auth

from . import tokens


class BearerToken(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request, token: str):
        user = tokens.token_authenticate(token.strip(), request=request)  # raises TokenRefused: 401 (api.py)
        user.__dict__.pop("_orthoreg_roles", None)  # the user's roles as they are now
        request.user = user
        request.api_token = True
        return user


bearer = BearerToken()
AUTH = [bearer, django_auth]
