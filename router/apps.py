from django.apps import AppConfig


class RouterConfig(AppConfig):
    name = "router"
    verbose_name = "Router"

    def ready(self) -> None:
        from router import signals

        signals.connect()
