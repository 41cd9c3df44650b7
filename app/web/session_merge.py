"""Session keys whose entries two requests may write at once, shared by the
session store (app/auth/sessions.py) and the pages that write them.

:data:`TOKEN_DICT_KEYS`: keys holding a dict of entries by a random token,
each written by one request (a question a page asks), and how many of the
newest a session keeps. The store merges them like the flashed messages, so
two tabs writing at once keep both entries. A page adds its key at import.
"""

from __future__ import annotations

TOKEN_DICT_KEYS: dict[str, int] = {}
