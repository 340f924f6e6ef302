"""What the market sends in (under /api/inbound/v1/, market tokens): awards."""

urlpatterns: list = []
