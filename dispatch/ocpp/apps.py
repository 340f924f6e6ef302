from django.apps import AppConfig


class OCPPConfig(AppConfig):
    name = "dispatch.ocpp"
    label = "ocpp"
    verbose_name = "OCPP central system"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported here, not at the top: models may be imported only once the app registry is ready.
        from dispatch import channels, schedules
        from dispatch.ocpp import delivery

        channels.register(channels.Channel("ocpp", serves=delivery.serves, deliver=delivery.deliver_chunk))
        schedules.on_planned(delivery.plans_changed)
