from django.apps import AppConfig


class WafaaConfig(AppConfig):
    name = "wafaa"
    verbose_name = "Wafaa core"

    def ready(self):
        from django.db.backends.signals import connection_created

        from wafaa.dbwatch import install_slow_query_logger

        connection_created.connect(install_slow_query_logger, dispatch_uid="wafaa-slow-queries")
