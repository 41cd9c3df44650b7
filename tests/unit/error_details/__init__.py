"""Tests of the error-details contract v1 (app.services.error_details), one file per adapter;
the real libraries' output they are fed is built in ``payloads.py``."""
