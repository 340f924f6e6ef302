"""What the market reads from the platform (under /api/outbound/v1/, market tokens): real-time telemetry."""

urlpatterns: list = []
