"""The base every app stands on: errors, state machines, access, API plumbing, charts, CSV and Redis helpers."""
