from django.apps import AppConfig


class InventivConfig(AppConfig):
    name = "inventiv"
    verbose_name = "Inventiv"
