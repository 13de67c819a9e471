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


"""Submit planned moves as live migrations and verify where servers land.

Each move is ``POST /servers/{id}/action {"os-migrateLive": {"host": dest,
"block_migration": "auto"}}`` with no ``force`` (microversion >= 2.30; force
was removed in 2.68), so Nova's scheduler and Placement re-validate the
destination. The executor then polls the server until its task state
clears or ``timeout`` passes; on timeout it aborts the in-progress
migration (``DELETE /servers/{id}/migrations/{mid}``, microversion >= 2.24).
A move succeeds only when the server is ACTIVE on the planned host.

Moves run one at a time, in plan order; after a failure the remaining
moves are skipped, since they were planned assuming the earlier ones.
"""

import dataclasses
import time

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

SUCCEEDED = 'succeeded'
FAILED = 'failed'
SKIPPED = 'skipped'
TIMED_OUT = 'timed-out'


@dataclasses.dataclass
class MoveResult:
    """Outcome of one planned move.

    :ivar status: ``succeeded``, ``failed``, ``timed-out`` or ``skipped``.
    :ivar host: the host the server was on when the executor last looked.
    :ivar detail: what happened, for the operator.
    """

    move: object
    status: str
    host: str = None
    detail: str = ''
    seconds: float = 0.0


def execute(conn, moves, timeout=600, poll_interval=2.0,
            clock=time.monotonic, sleep=time.sleep):
    """Run ``moves`` (list of :class:`nova_kronos.planner.Move`) in order.

    :returns: list of :class:`MoveResult`, one per move.
    """
    results = []
    failed = False
    for move in moves:
        if failed:
            results.append(MoveResult(
                move, SKIPPED, move.source,
                'not attempted: an earlier move failed'))
            continue
        result = _execute_one(conn, move, timeout, poll_interval, clock,
                              sleep)
        results.append(result)
        if result.status != SUCCEEDED:
            failed = True
    return results


def _execute_one(conn, move, timeout, poll_interval, clock, sleep):
    started = clock()

    def done(status, host, detail):
        LOG.info('kronos: %s %s -> %s: %s (%s)', move.server_id, move.source,
                 move.destination, status, detail)
        return MoveResult(move, status, host, detail, clock() - started)

    try:
        server = conn.compute.get_server(move.server_id)
    except Exception as e:
        return done(FAILED, None, 'cannot read server: %s' % e)
    if server.compute_host != move.source:
        return done(SKIPPED, server.compute_host,
                    'server is on %s, not on planned source %s; not moved'
                    % (server.compute_host, move.source))
    if server.status != 'ACTIVE' or server.task_state:
        return done(SKIPPED, server.compute_host,
                    'server is %s (task %s); not moved'
                    % (server.status, server.task_state))
    try:
        conn.compute.live_migrate_server(
            server, host=move.destination, block_migration='auto')
    except Exception as e:
        return done(FAILED, move.source,
                    'Nova refused the live migration; the server stays on '
                    '%s: %s' % (move.source, e))

    deadline = started + timeout
    while True:
        sleep(poll_interval)
        try:
            server = conn.compute.get_server(move.server_id)
        except Exception as e:
            LOG.warning('kronos: polling %s failed: %s', move.server_id, e)
            server = None
        if server is not None and not server.task_state and \
                server.status in ('ACTIVE', 'ERROR'):
            break
        if clock() >= deadline:
            return done(TIMED_OUT, getattr(server, 'compute_host', None),
                        _abort(conn, move))
    host = server.compute_host
    if host == move.destination and server.status == 'ACTIVE':
        return done(SUCCEEDED, host, 'live migration completed')
    migration = _last_migration(conn, move.server_id)
    status = migration.status if migration is not None else 'unknown'
    return done(FAILED, host,
                'live migration ended with status %s; the server stays on %s '
                '(%s)' % (status, host, server.status))


def _last_migration(conn, server_id):
    try:
        found = list(conn.compute.migrations(
            server_id=server_id, migration_type='live-migration'))
    except Exception as e:
        LOG.warning('kronos: cannot list migrations of %s: %s', server_id, e)
        return None
    return max(found, key=lambda m: m.id or 0, default=None)


def _abort(conn, move):
    try:
        running = list(conn.compute.server_migrations(move.server_id))
    except Exception as e:
        return 'timed out; cannot list its migrations to abort: %s' % e
    if not running:
        return 'timed out; no in-progress migration left to abort'
    for mig in running:
        try:
            conn.compute.abort_server_migration(mig, move.server_id)
        except Exception as e:
            return 'timed out; abort of migration %s failed: %s' % (mig.id, e)
    return 'timed out; in-progress migration aborted'
