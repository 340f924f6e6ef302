"""A simulated device fleet: a real client of the device API."""
