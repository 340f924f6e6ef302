"""Energy offers: curves (curve), deadlines and windows (deadlines), reads (selectors), writes (services)."""
