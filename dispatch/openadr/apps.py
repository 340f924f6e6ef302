from django.apps import AppConfig


class OpenADRConfig(AppConfig):
    name = "dispatch.openadr"
    label = "openadr"
    verbose_name = "OpenADR 3 VTN"
    default_auto_field = "django.db.models.BigAutoField"
