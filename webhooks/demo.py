"""`manage.py demo`'s webhook receiver: a local endpoint that checks each delivery's signature and
answers 200, so the demo's delivery log (admin → Webhook deliveries) fills with real deliveries."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable

from licensing_client import WebhookVerificationError, verify_webhook
from webhooks import services
from webhooks.models import WebhookEndpoint

DESCRIPTION = "Demo receiver (manage.py demo)"


def demo_endpoint(port: int) -> WebhookEndpoint:
    """The demo tenant's endpoint for the local receiver (current schema), created once."""
    url = f"http://127.0.0.1:{port}/webhooks"
    endpoint = WebhookEndpoint.objects.filter(description=DESCRIPTION).first()
    if endpoint is None:
        endpoint, _ = services.create_endpoint(url=url, description=DESCRIPTION)
    elif endpoint.url != url:
        endpoint = services.update_endpoint(endpoint, url=url, active=True)
    return endpoint


def start_receiver(port: int, secrets: Callable[[], list[str]], say: Callable[[str], None]):
    """Serve on 127.0.0.1:`port` in a daemon thread; returns the server (call shutdown())."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                event = verify_webhook(dict(self.headers.items()), body, secrets())
            except WebhookVerificationError as exc:
                say(f"Demo receiver refused a delivery: {exc}")
                self.send_response(400)
            else:
                say(f"Demo receiver got {event['type']} {event['id']} (signature valid)")
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="demo-receiver").start()
    return server
