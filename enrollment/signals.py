"""What enrollment tells the layers above it, without importing them (they connect in their apps' ready())."""

from django.dispatch import Signal

# A device reported that it is islanded or in a grid outage (status: "islanded" or "outage"); sent with
# device_id and status after its heartbeat is stored. Dispatch takes it out of the events it serves.
device_off_grid = Signal()
