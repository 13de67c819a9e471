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


"""Rebalance runs unattended: real Nova in-process, real Prometheus.

* two runs at once on one aggregate migrate what one run would;
* back to back, with metrics that still show the old placement (as
  Prometheus' rate windows do for minutes), the second run plans nothing
  the first already did, and a policy that claims to settle at once
  shows what would happen without the overlay;
* the cooldown comes from Nova's migration records, with no local state;
* parallel execution never runs two migrations on one host at once;
* a move Nova refuses is followed by a re-plan from a fresh read;
* SIGTERM mid-execute: the in-flight migration is waited for and
  reported, nothing more is submitted, nothing is left running;
* a POST whose response is lost is reported as what Nova did.
"""

from tests.functional import base  # noqa: I100  isort:skip

import os
import signal
import threading
import time

import fixtures
from keystoneauth1 import exceptions as ks_exc
from nova.virt import fake as fake_virt

from nova_kronos.cmd import manage

GIB = base.GIB
TERMINAL = ('completed', 'error', 'failed', 'cancelled')


class UnattendedTestCase(base.KronosFunctionalTestCase):

    #: Servers of 0.9 busy cores and 0.5 GiB on host1; one quiet server on
    #: each other host.
    hot = {'host1': 8}

    def setUp(self):
        super().setUp()
        layout, self.servers = {}, []
        for host in self.compute_hosts:
            count = self.hot.get(host, 1)
            busy = 0.9 if host in self.hot else 0.2
            booted = self.boot_servers(host, count,
                                       name_prefix='vm-%s' % host)
            layout[host] = [(s['id'], busy, GIB // 2) for s in booted]
            self.servers += [s['id'] for s in booted]
        self.layout = layout
        self.publish(layout)

    def migrations(self):
        return list(self.conn.compute.migrations())

    def dry_run_moves(self, budget):
        code, doc, err = self.rebalance('--max-migrations', str(budget))
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        return doc['moves']

    def republish_where_nova_says(self):
        """Serve each server's workload on the host Nova shows now."""
        busy = {sid: b for h, vms in self.layout.items()
                for sid, b, _ in vms}
        where = self.hosts_of(self.servers)
        layout = {h: [] for h in self.compute_hosts}
        for sid, host in where.items():
            layout[host].append((sid, busy[sid], GIB // 2))
        self.publish(layout)
        return self.measured_loads()[0]

    def slow_live_migrations(self, seconds):
        """Make the fake driver's live migration take ``seconds``.

        Records (source, destination, start, end) of each one, as the
        computes saw them.
        """
        self.seen = []
        original = fake_virt.FakeDriver.live_migration

        def live_migration(driver, context, instance, dest, *a, **kw):
            start = time.monotonic()
            time.sleep(seconds)
            self.seen.append((instance.host, dest, start, time.monotonic()))
            return original(driver, context, instance, dest, *a, **kw)
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.fake.FakeDriver.live_migration', live_migration))


class TestTwoRunsAndLaggingMetrics(UnattendedTestCase):

    def test_two_concurrent_runs_migrate_what_one_run_would(self):
        planned = len(self.dry_run_moves(6))
        self.assertGreaterEqual(planned, 2)
        runs = []

        def run():
            runs.append(self.rebalance('--execute', '--max-migrations', '6',
                                       '--lock-timeout', '120'))
        first = threading.Thread(target=run)
        second = threading.Thread(target=run)
        first.start()
        time.sleep(0.5)
        second.start()
        first.join(300)
        second.join(300)
        self.assertEqual(2, len(runs))
        for code, doc, err in runs:
            self.assertEqual(manage.EXIT_OK, code, err)
        moved = sorted(len(doc['results']) for _, doc, _ in runs)
        # One run did the work; the other waited for the lock, then read
        # Nova's records and found nothing left to correct.
        self.assertEqual([0, planned], moved)
        migrations = self.migrations()
        self.assertEqual(planned, len(migrations))
        self.assertEqual({'completed'}, {m.status for m in migrations})

    def test_back_to_back_runs_with_lagging_metrics(self):
        # No cooldown: only the overlay of recent migrations holds back.
        self.write_conf(cooldown=0)
        code, doc, err = self.rebalance('--execute', '--max-migrations', '6')
        self.assertEqual(manage.EXIT_OK, code, err)
        done = len(doc['results'])
        self.assertGreaterEqual(done, 2)

        # Prometheus still serves the old placement (nothing republished).
        code, doc, err = self.rebalance('--execute', '--max-migrations', '6')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual([], doc['moves'])
        self.assertEqual(done, len(doc['overlay']))
        self.assertEqual({'completed'}, {o['state'] for o in doc['overlay']})
        self.assertEqual(done, len(self.migrations()))

        # Control: a policy that claims its metrics settle at once makes
        # the same lagging data look unbalanced again.
        self.settle_metrics_at_once(cooldown=0)
        code, doc, err = self.rebalance('--max-migrations', '6')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual([], doc['overlay'])
        self.assertTrue(doc['moves'])

    def test_cooldown_is_read_back_from_nova_after_a_restart(self):
        code, doc, err = self.rebalance('--execute', '--max-migrations', '2')
        self.assertEqual(manage.EXIT_OK, code, err)
        moved = {r['server_id'] for r in doc['results']}
        self.assertEqual(2, len(moved))
        # A new process has nothing but Nova: drop the only local state.
        state = os.path.join(self._workdir, 'state')
        for root, dirs, files in os.walk(state, topdown=False):
            for name in files:
                os.remove(os.path.join(root, name))
        code, doc, err = self.rebalance('--max-migrations', '6')
        cooling = {e['name'] for e in doc['excluded']
                   if 'cooldown until' in e['reason']}
        self.assertEqual(moved, cooling)
        self.assertFalse(moved & {m['server_id'] for m in doc['moves']})


class TestParallel(UnattendedTestCase):

    compute_hosts = ('host1', 'host2', 'host3', 'host4', 'host5', 'host6')
    hot = {'host1': 6, 'host2': 6, 'host3': 6}

    def configure_scheduler(self):
        super().configure_scheduler()
        # In-process computes share one "live_migration" thread pool, of
        # max_concurrent_live_migrations workers (1 per compute by
        # default): give the six computes room for one each.
        self.flags(max_concurrent_live_migrations=6)

    def test_parallel_moves_one_per_host(self):
        self.slow_live_migrations(1.0)
        code, doc, err = self.rebalance('--execute', '--max-migrations', '6',
                                        '--max-parallel', '3')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual(6, len(doc['results']))
        self.assertEqual({'succeeded'}, {r['status'] for r in doc['results']})
        self.assertEqual(6, len(self.seen))

        def overlapping(a, b):
            return a[2] < b[3] and b[2] < a[3]
        most = 0
        for i, a in enumerate(self.seen):
            at_once = [b for b in self.seen if overlapping(a, b)]
            most = max(most, len(at_once))
            for b in self.seen[i + 1:]:
                if overlapping(a, b):
                    self.assertFalse({a[0], a[1]} & {b[0], b[1]},
                                     'two migrations on one host at once: '
                                     '%s and %s' % (a, b))
        # Computes ran several at once, never more than asked.
        self.assertGreaterEqual(most, 2)
        self.assertLessEqual(most, 3)

    def test_moves_sharing_a_host_wait_for_each_other(self):
        self.slow_live_migrations(0.5)
        code, doc, err = self.rebalance('--execute', '--max-migrations', '6',
                                        '--max-parallel', '6')
        self.assertEqual(manage.EXIT_OK, code, err)
        by_host = {}
        for src, dst, start, end in self.seen:
            for h in (src, dst):
                by_host.setdefault(h, []).append((start, end))
        for host, spans in by_host.items():
            spans.sort()
            for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
                self.assertLessEqual(e1, s2, 'overlap on %s' % host)


class TestRefusedAndReplanned(UnattendedTestCase):

    def test_refused_move_then_replan(self):
        before = self.measured_loads()[0]
        from nova_kronos.cloud import executor
        real_execute = executor.execute
        disabled = []

        def disable_first_destination(conn, moves, **kw):
            # An operator disables a host between planning and execution.
            if not disabled:
                dest = moves[0].destination
                svc = next(self.conn.compute.services(
                    binary='nova-compute', host=dest))
                self.conn.compute.disable_service(svc, dest, 'nova-compute')
                disabled.append(dest)
            return real_execute(conn, moves, **kw)
        self.useFixture(fixtures.MonkeyPatch(
            'nova_kronos.cloud.executor.execute', disable_first_destination))
        code, doc, err = self.rebalance('--execute', '--max-migrations', '4',
                                        '--max-parallel', '1')
        self.assertEqual(manage.EXIT_MOVE_FAILED, code, err)
        first = doc['results'][0]
        self.assertEqual('refused', first['status'], first)
        self.assertEqual('host1', first['host'])
        self.assertEqual('host1', self.host_of(first['server_id']))
        self.assertGreaterEqual(doc['rounds'], 2)
        later = [r for r in doc['results'][1:] if r['status'] == 'succeeded']
        self.assertTrue(later)
        for r in later:
            self.assertNotEqual(disabled[0], r['destination'])
            self.assertEqual(r['destination'], self.host_of(r['server_id']))
        # Measured again once Prometheus shows the new placement: host1's
        # load went down and the spread narrowed.
        after = self.republish_where_nova_says()
        spread_before = max(before['cpu'].values()) - min(
            before['cpu'].values())
        spread_after = max(after['cpu'].values()) - min(
            after['cpu'].values())
        self.assertLess(after['cpu']['host1'], before['cpu']['host1'])
        self.assertLess(spread_after, spread_before)


class TestInterruptAndLostResponse(UnattendedTestCase):

    def test_sigterm_mid_execute(self):
        self.slow_live_migrations(3.0)
        running = threading.Event()
        finished = threading.Event()

        def kill_when_running():
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not finished.is_set():
                if any(m.status == 'running' for m in self.migrations()):
                    running.set()
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                time.sleep(0.1)
        killer = threading.Thread(target=kill_when_running)
        killer.start()
        try:
            code, doc, err = self.rebalance(
                '--execute', '--max-migrations', '3', '--max-parallel', '1')
        finally:
            finished.set()
            killer.join(30)
        self.assertTrue(running.is_set())
        self.assertEqual(143, code, err)
        self.assertEqual('SIGTERM', doc['stopped'])
        statuses = [r['status'] for r in doc['results']]
        # The in-flight move was waited for and landed; nothing else went.
        self.assertEqual('succeeded', statuses[0], doc['results'][0])
        self.assertEqual(['not started'] * (len(statuses) - 1), statuses[1:])
        for r in doc['results'][1:]:
            self.assertIn('SIGTERM', r['detail'])
        # Nothing orphaned: one migration, finished; servers settled.
        migrations = self.migrations()
        self.assertEqual(['completed'], [m.status for m in migrations])
        for server in self.conn.compute.servers(details=True):
            self.assertEqual('ACTIVE', server.status)
            self.assertIsNone(server.task_state)

    def test_lost_post_response_is_reported_as_what_nova_did(self):
        compute = self.conn.compute
        real_post = compute.post
        lost = []

        def post(url, *a, **kw):
            response = real_post(url, *a, **kw)
            if url.endswith('/action') and 'os-migrateLive' in (
                    kw.get('json') or {}):
                lost.append(url)
                raise ks_exc.ConnectFailure('connection reset by peer')
            return response
        self.useFixture(fixtures.MonkeyPatch(
            'openstack.compute.v2._proxy.Proxy.post',
            lambda proxy, url, *a, **kw: post(url, *a, **kw)))
        code, doc, err = self.rebalance('--execute', '--max-migrations', '2')
        self.assertEqual(2, len(lost))
        self.assertEqual(manage.EXIT_OK, code, err)
        for r in doc['results']:
            self.assertEqual('succeeded', r['status'], r)
            self.assertEqual(r['destination'], self.host_of(r['server_id']))
        # Submitted once each: no retry doubled a migration.
        self.assertEqual(2, len(self.migrations()))
