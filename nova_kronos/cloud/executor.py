# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.


"""Submit planned moves as live migrations and report what Nova did.

Each move is submitted with :func:`nova_kronos.cloud.migrations.live_migrate`
(no ``force``: Nova's scheduler and Placement re-validate the host). Up to
``max_parallel`` migrations run at once, from one thread that polls them.

**Ordering.** A move waits while an earlier move of the plan that shares a
host (as source or destination) or a server group with it is not finished,
and is not started at all when such a move did not succeed. So at most one
migration runs per host at a time (Nova's ``max_concurrent_live_migrations``
defaults to 1 per compute), and every state the cloud passes through gives
each host and each server group a state the sequential plan also passes
through: capacity, server-group and threshold checks made by the planner
for the sequence hold for every intermediate state.

**Truth.** A result is what Nova says, read back after the fact: the
server's host and status and its newest migration record, also after a
client-side error (a lost response is not a refusal). Each move ends as
one of :data:`STATUSES`, with the host the server is on now.

**Stopping.** A :class:`Stop` is checked between polls: once requested,
nothing more is submitted; in-flight migrations are waited for up to its
``grace`` seconds, and aborted through Nova once it is escalated.
"""

import dataclasses
import threading
import time

from oslo_log import log as logging

from nova_kronos.cloud import migrations
from nova_kronos import text

LOG = logging.getLogger(__name__)

SUCCEEDED = 'succeeded'
REFUSED = 'refused'
FAILED = 'failed'
TIMED_OUT = 'timed-out'
INTERRUPTED = 'interrupted'
NOT_STARTED = 'not started'
#: Every status a move can end with.
STATUSES = (SUCCEEDED, REFUSED, FAILED, TIMED_OUT, INTERRUPTED, NOT_STARTED)
#: Statuses that count towards ``max_failures``.
FAILURES = (REFUSED, FAILED, TIMED_OUT)

#: Seconds to keep polling after an abort was sent, so the report says
#: whether the abort took effect.
ABORT_GRACE = 30.0
#: Seconds to wait, once the server has settled, for Nova's migration
#: record to reach its final status (Nova resets the server's task state
#: before it saves the record of a refused migration as ``error``).
RECORD_GRACE = 30.0
#: Final statuses of a live-migration record.
FINAL = ('completed', 'failed', 'error', 'cancelled')


class Stop:
    """A stop request shared by the signal handlers and the executor.

    :ivar level: 0 (run), 1 (submit nothing more, wait up to ``grace``
        seconds for in-flight moves), 2 (abort in-flight moves).
    :ivar signal_name: what asked for the stop (e.g. ``SIGTERM``), or None.
    """

    def __init__(self, grace=120.0, clock=time.monotonic):
        self.grace = float(grace)
        self.level = 0
        self.signal_name = None
        self.since = None
        self._clock = clock
        self._event = threading.Event()

    def request(self, name='stop'):
        """Escalate one level; the first call records ``name``."""
        self.level = min(self.level + 1, 2)
        if self.signal_name is None:
            self.signal_name = name
            self.since = self._clock()
        self._event.set()

    @property
    def stopping(self):
        return self.level >= 1

    @property
    def aborting(self):
        return self.level >= 2

    @property
    def grace_over(self):
        return self.stopping and self._clock() - self.since >= self.grace

    def wait(self, seconds):
        """Sleep up to ``seconds``; returns early when a stop arrives."""
        self._event.wait(seconds)
        self._event.clear()


@dataclasses.dataclass
class MoveResult:
    """Outcome of one planned move.

    :ivar status: one of :data:`STATUSES`.
    :ivar host: the host Nova shows the server on when the executor last
        looked (None when it could not be read).
    :ivar detail: what happened, for the operator.
    :ivar seconds: from submission to the end (0 when not started).
    :ivar migration_id: Nova's migration record id, when there is one.
    """

    move: object
    status: str
    host: str = None
    detail: str = ''
    seconds: float = 0.0
    migration_id: int = None

    @property
    def failure(self):
        return self.status in FAILURES


@dataclasses.dataclass
class _Flight:
    index: int
    move: object
    started: float
    deadline: float
    after_id: int
    migration: object = None
    abort_sent: float = None
    abort_error: str = None
    interrupted: bool = False
    settled_at: float = None


def execute(conn, moves, timeout=600, poll_interval=2.0, max_parallel=1,
            max_failures=None, groups=None, stop=None, clock=time.monotonic,
            sleep=None):
    """Run ``moves`` (list of :class:`nova_kronos.planner.Move`).

    :param timeout: seconds one live migration may take before it is
        aborted through Nova.
    :param poll_interval: seconds between two polls of the in-flight
        migrations.
    :param max_parallel: migrations in flight at once (>= 1).
    :param max_failures: after this many refused, failed or timed-out
        moves nothing more is submitted (None: no limit).
    :param groups: dict server id -> server group id, for the ordering
        rule (servers of one group never move concurrently).
    :param stop: a :class:`Stop`, or None.
    :returns: list of :class:`MoveResult`, one per move, in plan order.
    """
    groups = groups or {}
    stop = stop or Stop()
    wait = sleep or stop.wait
    max_parallel = max(1, int(max_parallel))
    started_at = clock()
    results = [None] * len(moves)
    flights = {}
    failures = 0
    # Moves touching each host / group, in plan order: the ordering rule
    # only looks at earlier moves sharing one of these keys.
    earlier = [[] for _ in moves]
    last_by_key = {}
    for i, m in enumerate(moves):
        keys = [('host', m.source), ('host', m.destination)]
        if groups.get(m.server_id):
            keys.append(('group', groups[m.server_id]))
        for key in keys:
            earlier[i].extend(last_by_key.get(key, ()))
            last_by_key.setdefault(key, []).append(i)

    def progress(i, event, result=None):
        done = [r for r in results if r is not None]
        LOG.info(
            'kronos: move %d/%d %s %s -> %s: %s%s (%d in flight, %d '
            'succeeded, %d failed, %.1f s elapsed)', i + 1, len(moves),
            moves[i].server_id, moves[i].source, moves[i].destination,
            event, ' (%s)' % result.detail if result else '', len(flights),
            sum(r.status == SUCCEEDED for r in done),
            sum(r.failure for r in done), clock() - started_at)

    def finish(flight, status, host, detail):
        results[flight.index] = MoveResult(
            flight.move, status, host, detail, clock() - flight.started,
            getattr(flight.migration, 'id', None))
        flights.pop(flight.index, None)
        progress(flight.index, status, results[flight.index])
        return results[flight.index]

    def not_started(i, detail):
        results[i] = MoveResult(moves[i], NOT_STARTED, moves[i].source,
                                detail)

    while True:
        # Submit what may start now.
        for i, m in enumerate(moves):
            if results[i] is not None or i in flights:
                continue
            if stop.stopping:
                not_started(i, 'not submitted: the run was stopped (%s)'
                            % stop.signal_name)
                continue
            if max_failures is not None and failures >= max_failures:
                not_started(i, 'not submitted: %d move(s) failed, '
                               'max_failures reached' % failures)
                continue
            blocking = [j for j in earlier[i] if results[j] is None]
            broken = [j for j in earlier[i] if results[j] is not None
                      and results[j].status != SUCCEEDED]
            if broken:
                j = broken[0]
                not_started(i, 'not submitted: it was planned after move '
                               '%d (%s -> %s), which ended %s'
                            % (j + 1, moves[j].source, moves[j].destination,
                               results[j].status))
                continue
            if blocking or len(flights) >= max_parallel:
                continue
            flight, result = _submit(conn, i, m, timeout, clock)
            if result is not None:
                results[i] = result
                failures += result.failure
                progress(i, result.status, result)
            else:
                flights[i] = flight
                progress(i, 'started')
        if not flights:
            if all(r is not None for r in results):
                break
            continue
        wait(poll_interval)
        for flight in list(flights.values()):
            result = _poll(conn, flight, stop, clock, finish)
            if result is not None:
                failures += result.failure
    return results


def _submit(conn, i, move, timeout, clock):
    """Submit one move; returns (flight, None) or (None, final result)."""
    started = clock()
    try:
        server = conn.compute.get_server(move.server_id)
    except Exception as e:
        return None, MoveResult(move, NOT_STARTED, None,
                                'not submitted: cannot read the server: %s'
                                % text.one_line(e, migrations.QUOTED_CHARS))
    if server.compute_host != move.source:
        return None, MoveResult(
            move, NOT_STARTED, server.compute_host,
            'not submitted: the server is on %s, not on the planned source '
            '%s' % (server.compute_host, move.source))
    if server.status != 'ACTIVE' or server.task_state:
        return None, MoveResult(
            move, NOT_STARTED, server.compute_host,
            'not submitted: the server is %s (task %s)'
            % (server.status, server.task_state))
    try:
        before = migrations.latest(conn, move.server_id)
    except migrations.NovaError as e:
        return None, MoveResult(move, NOT_STARTED, move.source,
                                'not submitted: %s' % e)
    flight = _Flight(i, move, started, started + timeout,
                     before.id if before else 0)
    try:
        migrations.live_migrate(conn, move.server_id, move.destination)
    except migrations.NovaError as e:
        # Ask Nova whether the request was acted upon before judging.
        migration, server = _read_back(conn, flight)
        # The API sets the server's task state to "migrating" before it
        # answers 202; the conductor writes the migration record later.
        accepted = (migration is not None and migration.status != 'error'
                    or getattr(server, 'task_state', None) == 'migrating')
        if accepted and not e.refused:
            LOG.warning('kronos: %s; Nova accepted it anyway (%s): '
                        'following it', e,
                        'migration %s, %s' % (migration.id, migration.status)
                        if migration is not None else 'server migrating')
            flight.migration = migration
            return flight, None
        host = getattr(server, 'compute_host', None)
        if e.refused or migration is not None:
            return None, MoveResult(
                move, REFUSED, host, 'Nova refused the live migration; the '
                'server stays on %s: %s' % (host, e), clock() - started,
                getattr(migration, 'id', None))
        return None, MoveResult(
            move, NOT_STARTED, host,
            'the request did not reach Nova and Nova shows no new migration '
            'of the server, which is on %s: %s' % (host, e),
            clock() - started)
    return flight, None


def _read_back(conn, flight):
    """(newest migration record since submission, server), None if unread."""
    try:
        migration = migrations.latest(conn, flight.move.server_id,
                                      flight.after_id)
    except migrations.NovaError as e:
        LOG.warning('kronos: %s', e)
        migration = None
    try:
        server = conn.compute.get_server(flight.move.server_id)
    except Exception as e:
        LOG.warning('kronos: reading server %s failed: %s',
                    flight.move.server_id,
                    text.one_line(e, migrations.QUOTED_CHARS))
        server = None
    return migration, server


def _poll(conn, flight, stop, clock, finish):
    move = flight.move
    migration, server = _read_back(conn, flight)
    flight.migration = migration or flight.migration
    mig = flight.migration
    mig_status = getattr(mig, 'status', None)
    host = getattr(server, 'compute_host', None)
    settled = server is not None and not server.task_state and \
        server.status in ('ACTIVE', 'ERROR')
    now = clock()
    if server is None and mig_status in FINAL:
        # The server cannot be read, but Nova's record is final.
        settled = True
    if settled and mig_status not in FINAL:
        landed = (server.compute_host == move.destination
                  and server.status == 'ACTIVE')
        flight.settled_at = flight.settled_at or now
        if not landed and now - flight.settled_at < RECORD_GRACE:
            # Judge a server still on its source by the final record.
            settled = False
    if settled:
        return finish(flight, *_verdict(move, server, mig, flight))
    if stop.aborting and not flight.interrupted:
        flight.interrupted = True
        _send_abort(conn, flight, now)
    elif now >= flight.deadline and flight.abort_sent is None \
            and not flight.interrupted:
        _send_abort(conn, flight, now)
    # The abort was refused, or had its time to take effect.
    abort_over = flight.abort_sent is not None and (
        flight.abort_error or now - flight.abort_sent >= ABORT_GRACE)
    if abort_over and flight.interrupted:
        return finish(flight, INTERRUPTED, host, _running(
            flight, 'abort requested after %s' % stop.signal_name))
    if stop.grace_over and not stop.aborting:
        return finish(flight, INTERRUPTED, host, _running(
            flight, 'the run was stopped (%s) and its %g s wait for '
                    'in-flight moves ended; not aborted'
            % (stop.signal_name, stop.grace)))
    if abort_over:
        return finish(flight, TIMED_OUT, host, _running(
            flight, 'timed out after %g s' % (flight.deadline
                                              - flight.started)))
    return None


def _running(flight, why):
    mig = flight.migration
    state = ('still running (migration %s, status %s)' % (mig.id, mig.status)
             if mig is not None else 'state unknown (no migration record '
             'could be read)')
    abort = ''
    if flight.abort_sent is not None:
        abort = ('; abort refused: %s' % flight.abort_error
                 if flight.abort_error else '; abort sent, not yet effective')
    return '%s; %s on Nova%s' % (why, state, abort)


def _send_abort(conn, flight, now):
    flight.abort_sent = now
    mig = flight.migration
    if mig is None:
        flight.abort_error = 'no migration record to abort'
        return
    try:
        migrations.abort(conn, flight.move.server_id, mig.id)
        LOG.warning('kronos: aborting migration %s of %s', mig.id,
                    flight.move.server_id)
    except migrations.NovaError as e:
        flight.abort_error = str(e)


def _verdict(move, server, mig, flight):
    """(status, host, detail) of a migration Nova has finished with."""
    if server is not None:
        host, state = server.compute_host, server.status
    else:
        # Where Nova's record says the server is.
        host = mig.destination if mig.status == 'completed' else mig.source
        state = "server unreadable; per Nova's migration record"
    where = 'the server is on %s (%s)' % (host, state)
    mig_text = ('migration %s: %s' % (mig.id, mig.status)
                if mig is not None else 'no migration record')
    landed = (state == 'ACTIVE' if server is not None
              else mig.status == 'completed')
    if host == move.destination and landed:
        return SUCCEEDED, host, 'live migration completed (%s); %s' % (
            mig_text, where)
    status = getattr(mig, 'status', None)
    if flight.abort_sent is not None and status == 'cancelled':
        if flight.interrupted:
            return INTERRUPTED, host, 'aborted after the stop; %s' % where
        return TIMED_OUT, host, 'timed out after %g s and aborted; %s' % (
            flight.deadline - flight.started, where)
    if status == 'error' or mig is None:
        return REFUSED, host, "Nova refused it before it started (%s); " \
            '%s' % (mig_text, where)
    return FAILED, host, 'live migration failed (%s); %s' % (
        mig_text, where)
