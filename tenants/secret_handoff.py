"""A new secret carried from the admin POST that made it to the one GET that shows it.

POST-redirect-GET, so a reload never creates or rotates again and never shows the secret twice.
The session (stored server side) holds only the secret XOR a random one-time pad; the pad travels
in a short-lived HttpOnly cookie limited to the secret's page. Neither reveals the secret alone;
the GET that shows it removes both, and after MAX_AGE seconds it is gone. Used for User Tokens and
webhook signing secrets alike.
"""

import secrets
import time

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse


def _xor(data: bytes, pad: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, pad, strict=True))


class SecretHandoff:
    MAX_AGE = 300

    def __init__(self, kind: str, object_id, path: str):
        self.session_key = f"{kind}_new_secrets"
        self.object_id = str(object_id)
        self.path = path
        self.cookie = f"{kind}_pad_{object_id}"

    def _pending(self, request) -> dict:
        now = time.time()
        pending = request.session.get(self.session_key, {})
        return {key: entry for key, entry in pending.items() if entry["until"] > now}

    def _keep(self, request, pending: dict) -> None:
        if pending:
            request.session[self.session_key] = pending
        else:
            request.session.pop(self.session_key, None)

    def redirect(self, request, secret: str, **facts) -> HttpResponseRedirect:
        """The answer to the POST: remember the masked secret (and `facts`, JSON values, for the
        page), send the browser to the secret's page."""
        data = secret.encode()
        pad = secrets.token_bytes(len(data))
        pending = self._pending(request)
        pending[self.object_id] = {
            "masked": _xor(data, pad).hex(),
            "facts": facts,
            "until": time.time() + self.MAX_AGE,
        }
        self._keep(request, pending)
        response = HttpResponseRedirect(self.path)
        response.set_cookie(
            self.cookie,
            pad.hex(),
            max_age=self.MAX_AGE,
            path=self.path,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=True,
            samesite="Strict",
        )
        response["Cache-Control"] = "no-store"
        return response

    def take(self, request) -> tuple[str, dict] | None:
        """(secret, facts) once; None when it was shown already, expired or never made here."""
        pending = self._pending(request)
        entry = pending.pop(self.object_id, None)
        self._keep(request, pending)
        try:
            pad = bytes.fromhex(request.COOKIES.get(self.cookie, ""))
            masked = bytes.fromhex(entry["masked"]) if entry else b""
        except ValueError:
            return None
        if entry is None or not pad or len(pad) != len(masked):
            return None
        try:
            return _xor(masked, pad).decode(), entry["facts"]
        except UnicodeDecodeError:  # a pad from another secret of the same length
            return None

    def forget(self, response) -> None:
        response.delete_cookie(self.cookie, path=self.path, samesite="Strict")


class SecretPageMixin:
    """A ModelAdmin's page that shows a handed-off secret once: the GET after the POST that made
    it. `handoff_class(pk)` finds it; `secret_response(request, obj, secret, **facts)` shows it."""

    handoff_class: type[SecretHandoff]
    lost_secret_message: str

    def secret_view(self, request, object_id):
        if request.method != "GET":
            return HttpResponseNotAllowed(["GET"])
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404(f"No such {self.opts.verbose_name}.")
        handoff = self.handoff_class(obj.pk)
        taken = handoff.take(request)
        if taken is None:
            self.message_user(request, self.lost_secret_message, messages.WARNING)
            opts = self.opts
            change = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
            response = HttpResponseRedirect(change)
        else:
            secret, facts = taken
            response = self.secret_response(request, obj, secret, **facts)
        handoff.forget(response)
        return response
