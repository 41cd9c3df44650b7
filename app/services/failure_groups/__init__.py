"""Failure groups: the distinct problems behind many failed jobs.

* :mod:`.fingerprint` -- which group an error item belongs to (versioned rules);
* :mod:`.recording` -- the write path, inside the recorder's transaction;
* :mod:`.hits_statement` -- its PostgreSQL statements (one per report);
* :mod:`.write_statements` -- what both backends share, and SQLite's statements;
* :mod:`.lifecycle` -- resolve, ignore, reopen; regressions and wake-ups;
* :mod:`.queries` -- lists, one group, exact counts, series, timeline;
* :mod:`.serialize` -- the JSON shape of a group;
* :mod:`.backfill` -- grouping stored failures in batches.

``docs/failure-groups.md`` describes the design and these functions.
"""
