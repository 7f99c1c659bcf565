"""Django's middleware for browser pages (the admin, the docs), skipped on the API's paths.

The API authenticates with bearer tokens and uses no session, message or session user, so on
`/v1/` these pass the request straight on; everywhere else they are Django's own. (Subclasses,
so the admin's checks still find them in MIDDLEWARE.) CSRF's and the common middleware stay
Django's own: `check --deploy` looks for CSRF's by name (DRF's views are
csrf-exempt, so it costs the API little), and the common one sets the answers' Content-Length.
"""

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions

from api.errors import is_api_request


class BrowserOnly:
    def __call__(self, request):
        if is_api_request(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(BrowserOnly, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(BrowserOnly, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(BrowserOnly, messages.MessageMiddleware):
    pass
