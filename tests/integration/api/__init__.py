"""The JSON API under ``/api/v1`` over HTTP, one file per part of the API (shared helpers in
``helpers.py``, fixtures in ``conftest.py``)."""
