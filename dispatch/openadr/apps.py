from django.apps import AppConfig


class OpenADRConfig(AppConfig):
    name = "dispatch.openadr"
    label = "openadr"
    verbose_name = "OpenADR 3 VTN"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: models may be imported only once the app registry is ready.
        from dispatch import channels
        from dispatch.openadr import jobs, selectors

        channels.register(channels.Channel("openadr3", serves=selectors.serves_devices, deliver=jobs.sync_commands))
