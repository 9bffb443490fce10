from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: the background-job life cycle, errors, staff checks, file and record helpers."""

    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from core import checks  # noqa: F401 - registers the system checks
