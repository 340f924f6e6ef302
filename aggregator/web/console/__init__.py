"""The operator console: fleet, resources, the event control room, settlement and health, for the browser."""
