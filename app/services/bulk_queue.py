"""Bulk actions on the job queue kept in PostgreSQL (procrastinate).

With ``BULK_ACTION_RUNNER = "procrastinate"`` (the default on PostgreSQL),
confirming a bulk action defers one task, :func:`run_bulk_action`, in the
same transaction as its claim and its audit row (:func:`defer_run`), and a
worker (``flask bulk-worker``, :func:`run_worker`) works through the whole
frozen selection with :func:`app.services.bulk_actions.run`, 1,000 jobs per
transaction, with no time limit. The selection records how far it got
(``next_position``), so a task that failed, or whose worker was killed, is
run again and continues from there:

* an error: procrastinate retries the task (:data:`RETRY`);
* a killed worker: its job stays ``doing`` and its heartbeat stops; every
  worker of the queue looks for such stalled jobs (:data:`STALLED_AFTER_SECONDS`)
  and retries them, or ends one as ``failed`` when a newer run of its
  action was queued meanwhile (that run then continues the action);
* a worker told to stop (SIGTERM, SIGINT): the running action pauses after
  its current batch and its task queues a new one for the rest (not a
  retry: stops do not use up :data:`RETRY`'s attempts), which the next
  worker runs.

The same worker runs the periodic maintenance: :func:`roll_up_days`, the
daily roll-up of failure groups' occurrences (:mod:`app.services.failure_groups.daily`),
deferred by procrastinate's periodic deferrer at :data:`ROLL_UP_CRON`. Each
running worker tries to defer it, and procrastinate's
``procrastinate_periodic_defers`` table lets one defer per scheduled time
through; its ``lock`` keeps two runs from overlapping.

procrastinate's tables and functions are created by migration 0012.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

import procrastinate
from procrastinate.worker import Worker
from sqlalchemy import text as sa_text
from sqlalchemy.engine import make_url

from app.extensions import db
from app.models.types import utcnow
from app.services import bulk_actions
from app.services.failure_groups import daily
from app.services.rollup_compaction import compact_counters, compact_rollups

#: The queue bulk actions run on.
QUEUE = "bulk_actions"
#: Seconds without a heartbeat after which a worker counts as dead and its
#: running task is retried (procrastinate's own default).
STALLED_AFTER_SECONDS = 30.0
#: Seconds between a worker's heartbeats (procrastinate's default).
HEARTBEAT_SECONDS = 10.0
#: An error in a batch (a lock timeout, a dropped connection) is retried a
#: few times, each continuing from the last committed batch.
RETRY = procrastinate.RetryStrategy(max_attempts=5, wait=5)
#: The queue of periodic maintenance (the daily roll-up), apart from the
#: bulk actions so that it can be watched and emptied on its own.
MAINTENANCE_QUEUE = "maintenance"
#: When the daily roll-up is deferred (cron syntax, UTC: procrastinate reads
#: the schedule on Unix timestamps): five minutes after a day closes
#: (:data:`app.services.failure_groups.daily.CLOSE_AFTER`, 01:00 UTC).
ROLL_UP_CRON = "5 1 * * *"
#: The queues a worker takes tasks from.
QUEUES = (QUEUE, MAINTENANCE_QUEUE)
#: The roll-up's procrastinate lock and queueing lock: one run at a time,
#: and at most one waiting.
ROLL_UP_LOCK = "failure-group-daily-roll-up"
#: How late (seconds) a worker may start and still defer the last scheduled
#: roll-up (procrastinate's ``max_delay``, 10 minutes by default): a day, so
#: that a worker down at 01:05 catches the roll-up up when it starts.
PERIODIC_MAX_DELAY = 24 * 3600.0

logger = logging.getLogger(__name__)
#: Seconds :func:`run_worker` waits before starting its worker again after
#: it stopped on its own (the database went away), doubled after each
#: start that fails, up to :data:`RESTART_PAUSE_MAX_SECONDS`.
RESTART_PAUSE_SECONDS = 1.0
RESTART_PAUSE_MAX_SECONDS = 30.0


class HostApp(Protocol):
    """What the worker needs of the web app (a Flask app fits): its
    configuration and an application context to run each task in. A
    protocol, so that this service imports nothing of the web layer."""

    config: Mapping[str, Any]

    def app_context(self) -> AbstractContextManager[Any]:
        """A context in which ``app.extensions.db`` is bound to the app's database."""
        ...


#: The task registry. Its connector is replaced by a connected one in the
#: worker (:func:`run_worker`); the web process only defers on its own
#: SQLAlchemy connection (:func:`defer_run`) and never opens a pool.
queue_app = procrastinate.App(connector=procrastinate.PsycopgConnector(),
                              periodic_defaults={"max_delay": PERIODIC_MAX_DELAY})
#: Keys of the worker's ``additional_context`` (procrastinate hands it to
#: each task): the Flask app whose configuration and database the tasks
#: use, and the event set when the worker is told to stop (running actions
#: pause after their batch). Per worker, not module globals: two workers in
#: one process (tests) do not share them.
FLASK_APP = "flask_app"
STOPPING = "stopping"


@queue_app.task(name="run_bulk_action", queue=QUEUE, retry=RETRY, pass_context=True)
def run_bulk_action(context: procrastinate.JobContext, bulk_id: str) -> None:
    """Run the bulk action ``bulk_id`` (a UUID string) to its end.

    Takes the action over whatever its state (``running`` as left by the
    request that deferred it or by a killed worker, ``failed``, ``paused``);
    a ``done`` one is left alone. procrastinate's ``lock`` (the bulk id)
    keeps two runs of the same action from overlapping.

    When the worker is stopping, the action pauses after its batch and a
    new task for the rest is queued (:func:`defer_run`) before this one ends.

    Raises:
        RuntimeError: called outside :func:`run_worker`.
        Exception: whatever a batch raised (the action is then ``failed``
            with its exact counts, and procrastinate retries the task).
    """
    flask_app: HostApp | None = context.additional_context.get(FLASK_APP)
    if flask_app is None:
        raise RuntimeError("run_bulk_action runs in a worker started by run_worker()")
    stopping: threading.Event = context.additional_context[STOPPING]
    with flask_app.app_context():
        key = uuid.UUID(bulk_id)
        if not bulk_actions.resume(key):
            return
        try:
            bulk = bulk_actions.run(key, flask_app.config.get("BULK_ACTION_BATCH_SIZE", bulk_actions.BATCH_SIZE),
                                    stop_requested=stopping.is_set)
            if bulk.state == "paused":
                # Queued again as a new task, not retried: a retry would use
                # one of RETRY's attempts, so a sixth deploy during a long
                # action left it paused with its task "failed" (a trial).
                # The new task waits for this one's lock, then any worker runs
                # it. Deferred on the worker's own connector: the pause is
                # committed already, and procrastinate's worker connector
                # takes no SQLAlchemy connection.
                try:
                    run_bulk_action.configure(queueing_lock=bulk_id, lock=bulk_id).defer(bulk_id=bulk_id)
                except procrastinate.exceptions.AlreadyEnqueued:
                    pass  # a "Continue" on the page queued it meanwhile
                logger.info("bulk action %s paused at %d of %d; queued again", bulk_id, bulk.next_position,
                            bulk.total)
        finally:
            db.session.remove()


@queue_app.periodic(cron=ROLL_UP_CRON, periodic_id="daily")
@queue_app.task(name="roll_up_closed_days", queue=MAINTENANCE_QUEUE, lock=ROLL_UP_LOCK,
                queueing_lock=ROLL_UP_LOCK, retry=RETRY, pass_context=True)
def roll_up_days(context: procrastinate.JobContext, timestamp: int) -> int:
    """Roll the closed UTC days up into ``failure_group_daily``
    (:func:`app.services.failure_groups.daily.roll_up_closed_days`, at the
    worker's clock, not at ``timestamp``: a late run rolls up every day
    closed by then), then fold the summary rollups' past shards
    (:func:`app.services.rollup_compaction.compact_rollups`) and the groups'
    counter shards (:func:`~app.services.rollup_compaction.compact_counters`).
    ``timestamp``: the scheduled time (Unix seconds), given by
    procrastinate's periodic deferrer. Returns the days summed (0 when
    another run got there first: the roll-up is idempotent).

    When the worker is stopping, the action pauses after its batch and a
    new task for the rest is queued (:func:`defer_run`) before this one ends.

    Raises:
        RuntimeError: called outside :func:`run_worker`.
    """
    flask_app: HostApp | None = context.additional_context.get(FLASK_APP)
    if flask_app is None:
        raise RuntimeError("roll_up_closed_days runs in a worker started by run_worker()")
    with flask_app.app_context():
        try:
            now = utcnow()
            days = daily.roll_up_closed_days(now)
            folded = compact_rollups(now)
            counters = compact_counters()
        finally:
            db.session.remove()
    logger.info("failure-group daily roll-up scheduled at %s: %s day(s) summed", timestamp, days)
    logger.info("summary rollups: %s set(s) of rows folded (past days and hours, all-time ranges), %s rows to %s, "
                "%s left for the next run",
                folded.buckets, folded.rows_before, folded.rows_after, len(folded.skipped))
    logger.info("group counters: %s range(s) of groups folded, %s rows to %s, %s left for the next run",
                counters.buckets, counters.rows_before, counters.rows_after, len(counters.skipped))
    return days


def defer_run(bulk_id: uuid.UUID) -> bool:
    """Queue :func:`run_bulk_action` for ``bulk_id`` inside the caller's open
    write transaction (on its psycopg connection: the task exists exactly
    when the claim and the audit row commit).

    The queueing lock is the bulk id: while a run of it waits in the queue,
    a second one is not queued (``False``). The attempt runs in a savepoint,
    because PostgreSQL aborts the whole transaction on the unique violation.
    """
    connection = db.session.connection()
    try:
        with db.session.begin_nested():
            run_bulk_action.configure(
                queueing_lock=str(bulk_id), lock=str(bulk_id),
                connection=connection.connection.driver_connection,
            ).defer(bulk_id=str(bulk_id))
    except procrastinate.exceptions.AlreadyEnqueued:
        return False
    return True


def conninfo(database_uri: str) -> str:
    """The libpq connection string of an SQLAlchemy PostgreSQL URL
    (``postgresql+psycopg://...`` -> ``postgresql://...``)."""
    return make_url(database_uri).set(drivername="postgresql").render_as_string(hide_password=False)


async def _retry_stalled(app: procrastinate.App, every: float, stalled_after: float) -> None:
    # procrastinate leaves a killed worker's job "doing"; its documented
    # remedy is to retry the jobs of workers whose heartbeat stopped.
    while True:
        for queue in QUEUES:
            try:
                for job in await app.job_manager.get_stalled_jobs(queue=queue, seconds_since_heartbeat=stalled_after):
                    await _retry_stalled_job(app, queue, job)
            except Exception as error:  # noqa: BLE001 -- the loop must outlive one bad round
                # A trial: one error ended this loop for good, and the
                # worker never retried a stalled job again. The type only:
                # a database error's text may hold the connection's details.
                logger.warning("stalled %s jobs not retried this round (%s); trying again", queue,
                               type(error).__name__)
        await asyncio.sleep(every)


async def _retry_stalled_job(app: procrastinate.App, queue: str, job: procrastinate.jobs.Job) -> None:
    """Retry a stopped worker's ``job``; when a run of the same bulk action
    was queued meanwhile (an operator's Continue, a stopping worker's
    re-queue: same queueing lock), end the stalled one as ``failed``
    instead. Its retry would break the queueing lock's unique index, and
    while it stays ``doing`` its ``lock`` keeps the queued run from ever
    starting (a trial's action stood at "running" until a manual UPDATE)."""
    try:
        logger.warning("retrying %s job %s of a stopped worker", queue, job.id)
        await app.job_manager.retry_job(job)
    except procrastinate.exceptions.UniqueViolation:
        logger.warning("%s job %s of a stopped worker ended: a newer run of it is queued", queue, job.id)
        await app.job_manager.finish_job(job, status=procrastinate.jobs.Status.FAILED, delete_job=False)


def run_worker(flask_app: HostApp, *, concurrency: int = 1, stalled_after: float = STALLED_AFTER_SECONDS,
               heartbeat: float = HEARTBEAT_SECONDS, wait: bool = True) -> None:
    """Run a procrastinate worker on the :data:`QUEUES` of ``flask_app``'s
    PostgreSQL database until it is stopped (SIGINT/SIGTERM: the running
    action pauses after its current batch and is queued again), or, with
    ``wait=False``, until the queues are empty. While it waits, it defers
    the periodic tasks (:func:`roll_up_days`) when they are due.

    Args:
        concurrency: tasks run at once (each is one bulk action).
        stalled_after: seconds without a heartbeat after which another
            worker's running task is retried.
        heartbeat: seconds between this worker's heartbeats.

    When the worker stops on its own while ``wait`` (procrastinate stops it
    when its LISTEN connection or heartbeat fails: the database restarted or
    went away), it is started again after :data:`RESTART_PAUSE_SECONDS`,
    doubling up to :data:`RESTART_PAUSE_MAX_SECONDS`, with a warning logged;
    so the process outlives a database restart. With ``wait=False`` a
    failure is raised.
    """
    stopping = threading.Event()

    async def main() -> None:
        # replace_connector(), not with_connector(): the periodic deferrer
        # defers through the tasks' own app, which with_connector() leaves
        # unconnected. One worker per process at a time (the CLI's shape).
        # A new connector per start: the last one's pool died with the database.
        connector = procrastinate.PsycopgConnector(conninfo=conninfo(flask_app.config["SQLALCHEMY_DATABASE_URI"]))
        with queue_app.replace_connector(connector) as worker_app:
            await _work(worker_app)

    async def _work(worker_app: procrastinate.App) -> None:
        async with worker_app.open_async():
            worker = Worker(
                app=worker_app, queues=list(QUEUES), concurrency=concurrency, wait=wait,
                update_heartbeat_interval=heartbeat, stalled_worker_timeout=stalled_after,
                delete_jobs="successful", install_signal_handlers=False,
                additional_context={FLASK_APP: flask_app, STOPPING: stopping},
            )

            def stop() -> None:
                # procrastinate's own handler would wait for the whole
                # action; the running task pauses after its batch instead.
                stopping.set()
                worker.stop()

            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop)
            retrying = asyncio.create_task(_retry_stalled(worker_app, min(heartbeat, stalled_after), stalled_after))
            try:
                await worker.run()
            finally:
                retrying.cancel()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)

    pause = RESTART_PAUSE_SECONDS
    while True:
        started = time.monotonic()
        try:
            asyncio.run(main())
        except Exception as exc:  # e.g. procrastinate's ConnectorException: the database is away
            if not wait or stopping.is_set():
                raise
            failure = type(exc).__name__
        else:
            if not wait or stopping.is_set():
                return
            # procrastinate stops its worker, without an error, when a side
            # task (the LISTEN connection, the heartbeat) fails: a database
            # restart did that, and the process exited 0, so a supervisor's
            # Restart=on-failure never started it again (a trial).
            failure = "a side task failed"
        if time.monotonic() - started > RESTART_PAUSE_MAX_SECONDS * 2:
            pause = RESTART_PAUSE_SECONDS  # it ran a while: the database had been back
        logger.warning("bulk worker stopped (%s); starting again in %.0f s", failure, pause)
        if _pause(stopping, pause):
            return
        pause = min(pause * 2, RESTART_PAUSE_MAX_SECONDS)


def _pause(stopping: threading.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less if SIGINT/SIGTERM comes (then ``True``)."""
    if threading.current_thread() is not threading.main_thread():
        return stopping.wait(seconds)
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in signals}
    try:
        return stopping.wait(seconds)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def queued(bulk_id: uuid.UUID) -> list[dict[str, Any]]:
    """The procrastinate jobs of ``bulk_id`` (``id``, ``status``, ``attempts``), oldest first."""
    rows = db.session.execute(
        sa_text("SELECT id, status::text AS status, attempts FROM procrastinate_jobs "
                "WHERE lock = :lock ORDER BY id"), {"lock": str(bulk_id)}
    ).mappings()
    return [dict(row) for row in rows]

