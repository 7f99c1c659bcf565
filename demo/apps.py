from django.apps import AppConfig


class DemoConfig(AppConfig):
    """`manage.py demo`: seeds a demo tenant across the apps and serves it (README, Start here)."""

    name = "demo"
    verbose_name = "Demo"
