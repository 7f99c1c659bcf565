import gc
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# The loaded application (modules, settings, URL patterns, views, serializers) lives as long as the
# worker. Frozen, it is left out of the garbage collector's full collections, which otherwise walk
# its ~130,000 objects: a pause of ~50 ms every few thousand requests, the tail of the latency
# figures (docs/performance.md). The URL patterns are loaded first, so their modules are frozen too.
for urlconf in {settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", None)} - {None}:
    get_resolver(urlconf).url_patterns  # noqa: B018 - imports the views
gc.freeze()
