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


"""End to end: real Nova (in-process harness) and a real Prometheus.

(a) the scheduler, with our weigher and filter, places as the data says;
(b) rebalance dry-run plans moves that lower the imbalance, moves nothing;
(c) rebalance --execute moves servers onto the planned hosts;
(d) no planned or executed move breaks a server group;
(e) Prometheus down: scheduling works, rebalance exits non-zero, no move.
"""

from tests.functional import base  # noqa: I100  isort:skip

from nova_kronos.cloud import executor
from nova_kronos.cmd import manage
from nova_kronos import planner
from nova_kronos import scoring

GIB = base.GIB


class TestScheduling(base.KronosFunctionalTestCase):

    def boot_one(self, name):
        server = self._create_server(name=name, networks='none',
                                     az='az1')
        return server['OS-EXT-SRV-ATTR:host']

    def test_weigher_places_on_least_loaded_host(self):
        # host2 holds the most servers (what Nova's RAM weigher would
        # avoid) but Prometheus says it is the least loaded. Neither
        # expected host is the first one, which a tie would pick.
        self.boot_servers('host2', 3)
        self.publish_host_loads(
            cpu={'host1': 0.50, 'host2': 0.10, 'host3': 0.40, 'host4': 0.60},
            memory={'host1': 0.50, 'host2': 0.20, 'host3': 0.45,
                    'host4': 0.60})
        self.assertEqual('host2', self.boot_one('first'))

        self.publish_host_loads(
            cpu={'host1': 0.70, 'host2': 0.50, 'host3': 0.05, 'host4': 0.60},
            memory={'host1': 0.70, 'host2': 0.50, 'host3': 0.10,
                    'host4': 0.60})
        self.assertEqual('host3', self.boot_one('second'))

    def test_filter_rejects_host_over_threshold(self):
        cpu = {'host1': 0.70, 'host2': 0.50, 'host3': 0.60, 'host4': 0.0}
        memory = {'host1': 0.30, 'host2': 0.50, 'host3': 0.60,
                  'host4': 0.92}
        expected = self.publish_host_loads(cpu, memory)
        # The weigher alone would pick host4 (idle CPU) ...
        names = list(self.compute_hosts)
        weights = scoring.host_weights(
            [[expected['cpu']['hosts'][h] for h in names],
             [expected['memory']['hosts'][h] for h in names]],
            ['spread', 'spread'], [0.6, 0.4], [0.85, 0.9])
        self.assertEqual('host4', names[int(weights.argmax())])
        self.assertEqual('host2', names[int(weights.argsort()[-2])])
        # ... but its memory load 0.92 is above the 0.9 threshold.
        self.assertEqual('host2', self.boot_one('filtered'))


class TestRebalance(base.KronosFunctionalTestCase):

    def setUp(self):
        super().setUp()
        anti = self.create_server_group('anti', 'anti-affinity')
        capped = self.create_server_group(
            'capped', 'anti-affinity', rules={'max_server_per_host': 2})
        # host1 is hot: 5 plain servers, anti-affinity member a1 and two
        # members of the max_server_per_host=2 group. a1's sibling a2 is on
        # the coldest host, host4: moving a1 there would help the load most
        # and break the group.
        plain = self.boot_servers('host1', 5, name_prefix='plain')
        a1 = self.boot_servers('host1', 1, group_id=anti['id'],
                               name_prefix='a1')[0]
        a2 = self.boot_servers('host4', 1, group_id=anti['id'],
                               name_prefix='a2')[0]
        c12 = self.boot_servers('host1', 2, group_id=capped['id'],
                                name_prefix='c')
        c3 = self.boot_servers('host3', 1, group_id=capped['id'],
                               name_prefix='c3')[0]
        other = self.boot_servers('host2', 2, name_prefix='other')
        self.groups = {
            'anti': ([a1['id'], a2['id']], 1),
            'capped': ([c['id'] for c in c12] + [c3['id']], 2),
        }
        self.a1, self.a2 = a1['id'], a2['id']
        busy = {'host1': 0.9, 'host2': 0.5, 'host3': 0.5, 'host4': 0.5}
        layout = {}
        for s in plain + [a1] + c12:
            layout.setdefault('host1', []).append((s['id'], busy['host1'],
                                                   GIB // 2))
        for host, servers in (('host2', other), ('host3', [c3]),
                              ('host4', [a2])):
            layout[host] = [(s['id'], busy[host], GIB // 2)
                            for s in servers]
        self.expected = self.publish(layout)
        self.all_ids = [s['id'] for s in plain + [a1, a2] + c12 + [c3]
                        + other]

    def assert_groups_hold(self, where):
        for name, (members, limit) in self.groups.items():
            per_host = {}
            for m in members:
                per_host[where[m]] = per_host.get(where[m], 0) + 1
            self.assertLessEqual(max(per_host.values()), limit,
                                 '%s broken: %s' % (name, per_host))

    def test_dry_run_plans_and_moves_nothing(self):
        before = self.hosts_of(self.all_ids)
        code, doc, err = self.rebalance('--max-migrations', '6')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual('dry-run', doc['mode'])
        agg = doc['aggregates'][0]
        # The loads come from the real Prometheus through the sample
        # policies' PromQL and match the synthetic series exactly.
        for policy in ('cpu', 'memory'):
            for host, load in self.expected[policy]['hosts'].items():
                self.assertAlmostEqual(load, agg['loads_before'][policy][host],
                                       places=9)
        self.assertTrue(doc['moves'])
        self.assertLess(agg['imbalance_after'], agg['imbalance_before'])
        for m in doc['moves']:
            self.assertLess(m['imbalance_after'], m['imbalance_before'])
            self.assertTrue(m['reason'])
        # (d) the plan never breaks a group, though host4 is the coldest.
        planned = dict(before)
        for m in doc['moves']:
            self.assertEqual(planned[m['server_id']], m['source'])
            planned[m['server_id']] = m['destination']
        self.assert_groups_hold(planned)
        self.assertNotEqual('host4', planned[self.a1])
        # Nothing moved.
        self.assertEqual(before, self.hosts_of(self.all_ids))
        self.assertEqual([], list(self.conn.compute.migrations()))

    def test_execute_moves_servers_to_planned_hosts(self):
        code, doc, err = self.rebalance('--execute', '--max-migrations', '4')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual('execute', doc['mode'])
        self.assertTrue(doc['moves'])
        self.assertEqual(len(doc['moves']), len(doc['results']))
        for m, r in zip(doc['moves'], doc['results']):
            self.assertEqual('succeeded', r['status'], r)
            # Nova's API shows each server on its planned host.
            self.assertEqual(m['destination'], self.host_of(m['server_id']))
        where = self.hosts_of(self.all_ids)
        self.assert_groups_hold(where)
        migrations = list(self.conn.compute.migrations())
        self.assertEqual(len(doc['moves']), len(migrations))
        self.assertEqual({'completed'}, {m.status for m in migrations})

    def test_move_nova_refuses_is_reported_and_server_stays(self):
        # A move onto a1's sibling host: Nova's scheduler re-validates the
        # explicit host (no force) and refuses it.
        move = planner.Move(
            server_id=self.a1, server_name='a1', source='host1',
            destination='host4', aggregate='agg1', reason='test',
            imbalance_before=0.0, imbalance_after=0.0)
        results = executor.execute(self.conn, [move, move], timeout=60,
                                   poll_interval=0.2)
        self.assertEqual(executor.REFUSED, results[0].status,
                         results[0].detail)
        self.assertEqual('host1', results[0].host)
        # Nova's own record of the refusal is quoted.
        self.assertIn('migration %d: error' % results[0].migration_id,
                      results[0].detail)
        self.assertIn('the server is on host1 (ACTIVE)', results[0].detail)
        self.assertEqual(executor.NOT_STARTED, results[1].status)
        self.assertIn('planned after move 1', results[1].detail)
        self.assertEqual('host1', self.host_of(self.a1))


class TestPrometheusDown(base.KronosFunctionalTestCase):

    def test_unknown_aggregate_is_bad_input(self):
        code, doc, err = self.rebalance('--aggregate', 'nope')
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('no host aggregate named nope (known: agg1)', err)

    def test_scheduling_neutral_and_rebalance_fails_cleanly(self):
        servers = self.boot_servers('host1', 4)
        self.publish({'host1': [(s['id'], 1.0, GIB) for s in servers]})
        self.prom.stop()

        server = self._create_server(name='while-down', networks='none',
                                     az='az1')
        self.assertEqual('ACTIVE', server['status'])

        before = self.hosts_of([s['id'] for s in servers])
        code, doc, err = self.rebalance('--execute')
        self.assertEqual(manage.EXIT_UNAVAILABLE, code)
        self.assertIsNone(doc)
        self.assertIn('cannot read metrics, nothing planned or migrated', err)
        self.assertIn('Prometheus at %s' % self.prom.url, err)
        self.assertEqual(before, self.hosts_of([s['id'] for s in servers]))
        self.assertEqual([], list(self.conn.compute.migrations()))
