"""Example agents governed by Charter, installed as the ``charter_examples`` package."""
