"""The demo: a fleet and a story to show the platform with, and the simulator that plays its devices."""
