from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


def _credential_changed(sender, instance, **kwargs):
    """A revoked, re-dated or deleted device token stops being answered from the poll cache at once."""
    from dispatch import poll_cache

    poll_cache.changed(credentials=[instance.key_id])


class DispatchConfig(AppConfig):
    name = "dispatch"

    def ready(self):
        from enrollment.models import DeviceCredential

        # A new credential has no stored answer yet; every later save may change its validity.
        post_save.connect(
            lambda sender, instance, created, **kw: None if created else _credential_changed(sender, instance),
            sender=DeviceCredential,
            weak=False,
            dispatch_uid="poll-cache-credential-saved",
        )
        post_delete.connect(_credential_changed, sender=DeviceCredential, dispatch_uid="poll-cache-credential-deleted")
