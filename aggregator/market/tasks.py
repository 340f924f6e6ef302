"""The market side's Celery tasks: thin (load ids, call a service)."""
