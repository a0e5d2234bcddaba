"""REST API tokens (django-rest-knox: only a token's hash is stored; README, "Using it")."""

from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication


class TokenAuthentication(KnoxTokenAuthentication):
    """Knox's `Authorization: Token <token>`, without its sweep of the user's other tokens on every request
    (one more query per API call, and a loop over every token the user holds). An expired token is still
    refused and deleted when it is presented; other expired tokens are refused whenever they come."""

    def _cleanup_token(self, auth_token) -> bool:
        if auth_token.expiry is not None and auth_token.expiry < timezone.now():
            auth_token.delete()
            return True
        return False
