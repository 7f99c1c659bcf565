"""config/wsgi.py: the application every server loads."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc, sys
import config.wsgi
from django.urls import get_resolver
frozen = gc.get_freeze_count()
modules = [name for name in sys.modules if name.startswith(("licensing.api", "tokens.api"))]
print(frozen, len(modules))
"""


def test_the_loaded_application_is_frozen_for_the_garbage_collector():
    """A full collection does not walk the application's objects: they are frozen, the API's
    views and serializers among them (imported before the freeze)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    output = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    frozen, api_modules = int(output[0]), int(output[1])
    assert frozen > 50_000
    assert api_modules >= 4
