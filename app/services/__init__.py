"""Domain services: plain-value functions and classes that own transactions.

Nothing here imports Flask: values from the app's config are passed in by the
caller (the instances built from it live in :mod:`app.registry`).
"""
