from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class DispatchConfig(AppConfig):
    name = "dispatch"

    def ready(self):
        # Imported here, not at the top: models may be imported only once the app registry is ready.
        from aggregator.aggregation.selectors import register_capability_limit
        from dispatch import channels, jobs, poll_cache, push, selectors, services
        from enrollment.models import DeviceCredential
        from enrollment.signals import device_off_grid

        def credential_changed(sender, instance, **kwargs):
            """A revoked, re-dated or deleted device token stops being answered from the poll cache at once."""
            poll_cache.changed(credentials=[instance.key_id])

        # A new credential has no stored answer yet; every later save may change its validity.
        post_save.connect(
            lambda sender, instance, created, **kw: None if created else credential_changed(sender, instance),
            sender=DeviceCredential,
            weak=False,
            dispatch_uid="poll-cache-credential-saved",
        )
        post_delete.connect(
            credential_changed, sender=DeviceCredential, weak=False, dispatch_uid="poll-cache-credential-deleted"
        )

        def off_grid(sender, device_id: int, status: str, **kwargs):
            services.leave_events_off_grid(device_id=device_id, status=status)

        device_off_grid.connect(off_grid, weak=False, dispatch_uid="dispatch-off-grid")

        # Capability counts what dispatch leaves: battery plans keep their energy, opt-outs count nothing.
        register_capability_limit(selectors.plans_limit_capability)
        register_capability_limit(selectors.without_opted_out)

        channels.register(channels.Channel("push", serves=push.serves, deliver=jobs.push_chunk))
