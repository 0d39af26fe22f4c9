"""Dramatiq actors for the follow-ups: thin, idempotent, taking ids, not objects.

See ../shared/DESIGN.md "Delivery" and "Scheduling".
"""
