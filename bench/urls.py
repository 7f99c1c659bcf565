"""The public domain's URLs plus the benchmark's reference endpoint (BENCH_REFERENCE=1 only)."""

from django.urls import path

from bench.reference import ReferenceView
from config.urls_public import handler404  # noqa: F401 (the same 404 as the public domain)
from config.urls_public import urlpatterns as public_urlpatterns

urlpatterns = [path("bench/reference", ReferenceView.as_view()), *public_urlpatterns]
