from django.apps import AppConfig


class WafaaConfig(AppConfig):
    name = "wafaa"
    verbose_name = "Wafaa core"
