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


"""Executor paths the functional tests cannot reach cheaply.

Nova is a small model here (servers, migration records, what each
submission does); time is simulated, one poll interval per wait.
"""

import types

import fixtures
import testtools

from nova_kronos.cloud import executor
from nova_kronos.cloud import migrations
from nova_kronos import planner


def move(sid, src, dst):
    return planner.Move(server_id=sid, server_name=sid, source=src,
                        destination=dst, aggregate='a', reason='r',
                        imbalance_before=0.2, imbalance_after=0.1)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class FakeNova:
    """Servers and live-migration records, driven by per-server scripts.

    ``script[sid]`` is a dict: ``polls`` (polls until the migration ends,
    default 1), ``end`` ('completed', 'failed', 'error' or None to run
    forever), ``post`` ('ok', 'refuse' (HTTP 400, record in error), or
    'lost' (accepted, but the client sees a connection error)),
    ``abortable`` (default True), ``unreadable`` (polls whose server read
    fails).
    """

    def __init__(self, hosts, script=None):
        self.servers = {sid: types.SimpleNamespace(
            id=sid, compute_host=h, status='ACTIVE', task_state=None)
            for sid, h in hosts.items()}
        self.script = script or {}
        self.records = []
        self.running = {}   # sid -> [record, polls left]
        self.busy_hosts = []  # per poll: hosts with a migration running
        self.started = []   # (time, sid) of accepted submissions
        self.clock = None

    def rec(self, sid, dst, status):
        r = types.SimpleNamespace(
            id=len(self.records) + 1, server_id=sid,
            source=self.servers[sid].compute_host, destination=dst,
            status=status)
        self.records.append(r)
        return r

    # -- openstacksdk surface ------------------------------------------------

    @property
    def compute(self):
        return self

    def get_server(self, sid):
        s = self.script.get(sid, {})
        if s.get('unreadable', 0) > 0:
            s['unreadable'] -= 1
            raise ConnectionError('read timed out')
        return types.SimpleNamespace(**vars(self.servers[sid]))

    def tick(self):
        """One poll interval passes."""
        for r in self.records:
            r.hidden = False
        for sid in list(self.running):
            self._advance(sid)

    def _advance(self, sid):
        r, left = self.running[sid]
        if left > 0:
            self.running[sid][1] -= 1
            return
        script = self.script.get(sid, {})
        end = script.get('end', 'completed')
        if end is None:
            return
        server = self.servers[sid]
        if script.get('record_lags') and server.task_state:
            # Nova resets the task state a poll before the record is final.
            server.task_state = None
            return
        del self.running[sid]
        r.status = end
        server.task_state = None
        if end == 'completed':
            server.compute_host = r.destination

    # -- migrations module surface ------------------------------------------

    def live_migrate(self, conn, sid, host):
        s = self.script.get(sid, {})
        post = s.get('post', 'ok')
        if post == 'refuse':
            self.rec(sid, host, 'error')
            raise migrations.NovaError('HTTP 400: No valid host',
                                       refused=True)
        r = self.rec(sid, host, 'running')
        # The conductor writes the record after the API's 202.
        r.hidden = post == 'lost-early'
        self.running[sid] = [r, s.get('polls', 1)]
        self.servers[sid].task_state = 'migrating'
        self.started.append((self.clock(), sid))
        if post in ('lost', 'lost-early'):
            raise migrations.NovaError('Connection reset by peer')

    def latest(self, conn, sid, after_id=0):
        found = [r for r in self.records if r.server_id == sid
                 and r.id > after_id and not getattr(r, 'hidden', False)]
        return found[-1] if found else None

    def abort(self, conn, sid, mid):
        if not self.script.get(sid, {}).get('abortable', True):
            raise migrations.NovaError('HTTP 400: not running',
                                       refused=True)
        r, _ = self.running.pop(sid)
        r.status = 'cancelled'
        self.servers[sid].task_state = None

    def busy(self):
        hosts = []
        for sid, (r, _) in self.running.items():
            hosts += [r.source, r.destination]
        return hosts


class Base(testtools.TestCase):

    def run_moves(self, nova, moves, stop=None, on_wait=None, **kw):
        clock = Clock()
        nova.clock = clock
        for name in ('live_migrate', 'latest', 'abort'):
            self.useFixture(fixtures.MockPatchObject(
                migrations, name, getattr(nova, name)))
        self.overlaps = []

        def sleep(seconds):
            busy = nova.busy()
            self.overlaps.append(len(busy) - len(set(busy)))
            nova.busy_hosts.append(busy)
            clock.sleep(seconds)
            nova.tick()
            if on_wait:
                on_wait(clock.now)
        kw.setdefault('timeout', 100)
        return executor.execute(nova, moves, poll_interval=1.0, clock=clock,
                                sleep=sleep, stop=stop, **kw)


class TestExecute(Base):

    def test_parallel_on_distinct_hosts(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h3', 's3': 'h5', 's4': 'h7'},
                        {s: {'polls': 3} for s in ('s1', 's2', 's3', 's4')})
        moves = [move('s1', 'h1', 'h2'), move('s2', 'h3', 'h4'),
                 move('s3', 'h5', 'h6'), move('s4', 'h7', 'h8')]
        results = self.run_moves(nova, moves, max_parallel=2)
        self.assertEqual([executor.SUCCEEDED] * 4,
                         [r.status for r in results])
        self.assertEqual(['h2', 'h4', 'h6', 'h8'], [r.host for r in results])
        # Never more than 2 in flight (4 hosts busy), and 2 at once at
        # the start: s1 and s2 submitted at t=0, s3 and s4 later.
        self.assertEqual(4, max(len(b) for b in nova.busy_hosts))
        self.assertEqual([(0.0, 's1'), (0.0, 's2')], nova.started[:2])
        self.assertGreater(nova.started[2][0], 0.0)

    def test_one_migration_per_host_and_plan_order(self):
        # s2's move leaves h2, where s1 arrives: it must wait for s1.
        nova = FakeNova({'s1': 'h1', 's2': 'h2', 's3': 'h5'},
                        {s: {'polls': 2} for s in ('s1', 's2', 's3')})
        moves = [move('s1', 'h1', 'h2'), move('s2', 'h2', 'h3'),
                 move('s3', 'h5', 'h6')]
        results = self.run_moves(nova, moves, max_parallel=3)
        self.assertEqual([executor.SUCCEEDED] * 3,
                         [r.status for r in results])
        order = [sid for _, sid in nova.started]
        self.assertEqual(['s1', 's3', 's2'], order)
        started = dict((sid, t) for t, sid in nova.started)
        self.assertGreater(started['s2'], started['s1'])
        # No host ever had two migrations at once.
        self.assertEqual(0, max(self.overlaps))

    def test_same_server_group_runs_one_after_the_other(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h3'},
                        {s: {'polls': 2} for s in ('s1', 's2')})
        moves = [move('s1', 'h1', 'h2'), move('s2', 'h3', 'h4')]
        self.run_moves(nova, moves, max_parallel=2,
                       groups={'s1': 'g', 's2': 'g'})
        (t1, _), (t2, _) = nova.started
        self.assertGreater(t2, t1)

    def test_refused_move_blocks_dependents_not_others(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h2', 's3': 'h5'},
                        {'s1': {'end': 'error'}})
        moves = [move('s1', 'h1', 'h2'), move('s2', 'h2', 'h3'),
                 move('s3', 'h5', 'h6')]
        results = self.run_moves(nova, moves, max_parallel=1)
        self.assertEqual(executor.REFUSED, results[0].status,
                         results[0].detail)
        self.assertEqual('h1', results[0].host)
        self.assertEqual(executor.NOT_STARTED, results[1].status)
        self.assertIn('planned after move 1', results[1].detail)
        self.assertEqual(executor.SUCCEEDED, results[2].status)

    def test_refusal_waits_for_the_final_record(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'end': 'error',
                                              'record_lags': True}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.REFUSED, r.status, r.detail)
        self.assertIn('migration 1: error', r.detail)

    def test_synchronous_refusal(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'post': 'refuse'}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.REFUSED, r.status)
        self.assertEqual('h1', r.host)
        self.assertIn('No valid host', r.detail)
        self.assertEqual(1, r.migration_id)

    def test_lost_response_is_reported_as_what_nova_did(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'post': 'lost'}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.SUCCEEDED, r.status, r.detail)
        self.assertEqual('h2', r.host)

    def test_lost_response_before_nova_wrote_its_record(self):
        # Only the server's task state says Nova took the request.
        nova = FakeNova({'s1': 'h1'}, {'s1': {'post': 'lost-early'}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.SUCCEEDED, r.status, r.detail)
        self.assertEqual(1, r.migration_id)

    def test_unreachable_api_is_not_started(self):
        nova = FakeNova({'s1': 'h1'})

        def unreachable(conn, sid, host):
            raise migrations.NovaError('connection refused')
        nova.live_migrate = unreachable
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.NOT_STARTED, r.status)
        self.assertIn('did not reach Nova', r.detail)
        self.assertEqual('h1', r.host)

    def test_unreadable_server_while_polling_still_lands(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'polls': 0}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.SUCCEEDED, r.status, r.detail)
        # Reads fail from now on; Nova's record says where it went.
        nova = FakeNova({'s1': 'h1'}, {'s1': {'polls': 1}})
        nova.script['s1']['unreadable'] = 0

        def break_reads(now):
            nova.script['s1']['unreadable'] = 99
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')],
                            on_wait=break_reads)
        self.assertEqual(executor.SUCCEEDED, r.status, r.detail)
        self.assertEqual('h2', r.host)
        self.assertIn("per Nova's migration record", r.detail)

    def test_failed_migration(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'end': 'failed'}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')])
        self.assertEqual(executor.FAILED, r.status)
        self.assertIn('migration 1: failed', r.detail)
        self.assertEqual('h1', r.host)

    def test_timeout_aborts(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'end': None}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')], timeout=5)
        self.assertEqual(executor.TIMED_OUT, r.status)
        self.assertIn('aborted', r.detail)
        self.assertEqual('cancelled', nova.records[0].status)
        self.assertEqual('h1', r.host)

    def test_timeout_with_abort_refused_says_still_running(self):
        nova = FakeNova({'s1': 'h1'}, {'s1': {'end': None,
                                              'abortable': False}})
        r, = self.run_moves(nova, [move('s1', 'h1', 'h2')], timeout=5)
        self.assertEqual(executor.TIMED_OUT, r.status)
        self.assertIn('still running (migration 1, status running)',
                      r.detail)
        self.assertIn('abort refused', r.detail)

    def test_max_failures_stops_submitting(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h3', 's3': 'h5'},
                        {'s1': {'post': 'refuse'}})
        moves = [move('s1', 'h1', 'h2'), move('s2', 'h3', 'h4'),
                 move('s3', 'h5', 'h6')]
        results = self.run_moves(nova, moves, max_failures=1)
        self.assertEqual([executor.REFUSED, executor.NOT_STARTED,
                          executor.NOT_STARTED],
                         [r.status for r in results])
        self.assertIn('max_failures', results[1].detail)
        self.assertEqual(1, len(nova.records))


class TestStop(Base):

    def moves(self):
        return [move('s1', 'h1', 'h2'), move('s2', 'h3', 'h4')]

    def test_first_signal_waits_for_in_flight_and_submits_nothing(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h3'}, {'s1': {'polls': 3}})
        clock = Clock()
        stop = executor.Stop(grace=60, clock=clock)
        results = self.run_moves(
            nova, self.moves(), stop=stop, max_parallel=1,
            on_wait=lambda now: stop.stopping or stop.request('SIGTERM'))
        self.assertEqual(executor.SUCCEEDED, results[0].status)
        self.assertEqual(executor.NOT_STARTED, results[1].status)
        self.assertIn('SIGTERM', results[1].detail)
        self.assertEqual(1, len(nova.records))

    def test_grace_over_leaves_it_running_and_says_so(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h3'}, {'s1': {'end': None}})
        clock = Clock()
        stop = executor.Stop(grace=0, clock=clock)
        results = self.run_moves(
            nova, self.moves(), stop=stop,
            on_wait=lambda now: stop.stopping or stop.request('SIGINT'))
        self.assertEqual(executor.INTERRUPTED, results[0].status)
        self.assertIn('not aborted', results[0].detail)
        self.assertIn('still running (migration 1, status running)',
                      results[0].detail)
        self.assertEqual('running', nova.records[0].status)

    def test_second_signal_aborts(self):
        nova = FakeNova({'s1': 'h1', 's2': 'h3'}, {'s1': {'end': None}})
        stop = executor.Stop(grace=600)

        def twice(now):
            if stop.level < 2:
                stop.request('SIGTERM')
        results = self.run_moves(nova, self.moves(), stop=stop,
                                 on_wait=twice)
        self.assertEqual(executor.INTERRUPTED, results[0].status)
        self.assertIn('aborted after the stop', results[0].detail)
        self.assertEqual('h1', results[0].host)
        self.assertEqual('cancelled', nova.records[0].status)
        self.assertEqual(executor.NOT_STARTED, results[1].status)
