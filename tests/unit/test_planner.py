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


import dataclasses

import testtools

from nova_kronos import fleet
from nova_kronos.planner import spread
from tests.unit import fakes


def plan(fl, snap, budget=10, ps=None, min_improvement=0.0001):
    return spread.SpreadPlanner(min_improvement).plan(
        fl, ps or fakes.policy_set(), snap, budget)


def final_hosts(fl, p):
    where = {s.id: s.host for s in fl.servers.values()}
    for m in p.moves:
        where[m.server_id] = m.destination
    return where


class TestSpreadPlanner(testtools.TestCase):

    def test_moves_from_hot_to_cold_and_lowers_imbalance(self):
        fl, snap = fakes.build({'h1': ['a', 'b', 'c', 'd'], 'h2': []})
        p = plan(fl, snap)
        self.assertEqual(2, len(p.moves))
        for m in p.moves:
            self.assertEqual(('h1', 'h2'), (m.source, m.destination))
            self.assertLess(m.imbalance_after, m.imbalance_before)
        agg = p.aggregates[0]
        self.assertAlmostEqual(0.2, agg.imbalance_before)
        self.assertAlmostEqual(0.0, agg.imbalance_after)
        self.assertAlmostEqual(0.2, agg.loads_after['cpu']['h2'])
        self.assertIn('cpu: h1 0.40->0.30', p.moves[0].reason)

    def test_budget_is_respected(self):
        fl, snap = fakes.build({'h1': list('abcdef'), 'h2': [], 'h3': []})
        self.assertEqual(1, len(plan(fl, snap, budget=1).moves))
        self.assertEqual(0, len(plan(fl, snap, budget=0).moves))

    def test_balanced_fleet_needs_no_move(self):
        fl, snap = fakes.build({'h1': ['a'], 'h2': ['b']})
        p = plan(fl, snap)
        self.assertEqual([], p.moves)

    def test_min_improvement(self):
        fl, snap = fakes.build({'h1': ['a', 'b'], 'h2': []}, share=0.01)
        self.assertEqual([], plan(fl, snap, min_improvement=0.05).moves)
        self.assertEqual(1, len(plan(fl, snap, min_improvement=0.001).moves))

    def test_unusable_destination_is_never_chosen(self):
        hosts = [fakes.host('h1'), fakes.host('h2'),
                 fakes.host('h3', usable=False,
                            unusable_reason='nova-compute is down')]
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': [], 'h3': []},
                               hosts=hosts)
        p = plan(fl, snap)
        self.assertTrue(p.moves)
        self.assertNotIn('h3', {m.destination for m in p.moves})
        self.assertIn(('host', 'h3', 'not a destination: nova-compute is '
                                     'down'), p.exclusions)

    def test_other_availability_zone_is_never_chosen(self):
        hosts = [fakes.host('h1'), fakes.host('h2', az='az2')]
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': []}, hosts=hosts)
        p = plan(fl, snap)
        self.assertEqual([], p.moves)
        self.assertIn('availability-zone', p.aggregates[0].rejections)

    def test_capacity(self):
        hosts = [fakes.host('h1'), fakes.host('h2', vcpus=1, ratio=1.0)]
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': []}, hosts=hosts)
        self.assertEqual(1, len(plan(fl, snap).moves))

    def test_threshold(self):
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': []})
        snap.data['cpu'].hosts['h2'] = 0.85
        p = plan(fl, snap)
        self.assertEqual([], p.moves)
        self.assertIn('threshold', p.aggregates[0].rejections)

    def test_host_without_data_is_left_out_and_reported(self):
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': [], 'h3': []})
        del snap.data['mem'].hosts['h3']
        p = plan(fl, snap)
        self.assertNotIn('h3', {m.destination for m in p.moves})
        self.assertEqual(['h1', 'h2'], p.aggregates[0].hosts)
        self.assertTrue(any(k == 'host' and n == 'h3' and 'mem' in r
                            for k, n, r in p.exclusions))

    def test_server_without_data_is_not_moved(self):
        fl, snap = fakes.build({'h1': ['a', 'b'], 'h2': []})
        del snap.data['cpu'].vms['a']
        p = plan(fl, snap)
        self.assertEqual(['b'], [m.server_id for m in p.moves])
        self.assertTrue(any(n == 'a' for _, n, _ in p.exclusions))

    def test_non_active_server_is_not_moved(self):
        fl, snap = fakes.build({'h1': ['a', 'b'], 'h2': []})
        fl.servers['a'].task_state = 'migrating'
        self.assertEqual(['b'], [m.server_id for m in plan(fl, snap).moves])


class TestModes(testtools.TestCase):

    def test_pack_policy_is_not_spread(self):
        # cpu (pack) is skewed, mem (spread) is even: nothing to do.
        fl, snap = fakes.build({'h1': ['a', 'b'], 'h2': ['c', 'd']})
        snap.data['cpu'].hosts.update(h1=0.8, h2=0.1)
        ps = fakes.policy_set()
        ps = dataclasses.replace(ps, policies=(
            dataclasses.replace(ps.get('cpu'), mode='pack'), ps.get('mem')))
        p = plan(fl, snap, ps=ps)
        self.assertEqual([], p.moves)
        self.assertAlmostEqual(0.0, p.aggregates[0].imbalance_before)

    def test_only_pack_policies_plans_nothing_and_says_why(self):
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': []})
        p = plan(fl, snap, ps=fakes.policy_set(mode='pack'))
        self.assertEqual([], p.moves)
        self.assertTrue(any(k == 'policy' for k, _, _ in p.exclusions))


class TestServerGroups(testtools.TestCase):

    def _group(self, policy, members, max_per_host=None):
        return fleet.ServerGroup(id='g', name='g', policy=policy,
                                 members=tuple(members),
                                 max_server_per_host=max_per_host)

    def test_anti_affinity_never_joins_a_sibling(self):
        # a and b are siblings; c, d fill h1. h2 holds sibling b.
        groups = [self._group('anti-affinity', ['a', 'b'])]
        fl, snap = fakes.build({'h1': ['a', 'c', 'd', 'e'], 'h2': ['b'],
                                'h3': ['f', 'g', 'h']}, groups=groups)
        snap.data['cpu'].vms['a'] = snap.data['mem'].vms['a'] = 0.3
        snap.data['cpu'].hosts['h1'] = snap.data['mem'].hosts['h1'] = 0.6
        p = plan(fl, snap)
        where = final_hosts(fl, p)
        self.assertNotEqual(where['a'], where['b'])

    def test_max_server_per_host(self):
        groups = [self._group('anti-affinity', ['a', 'b', 'c'], 2)]
        fl, snap = fakes.build({'h1': ['a', 'b', 'x', 'y'], 'h2': ['c']},
                               groups=groups)
        p = plan(fl, snap, budget=5)
        where = final_hosts(fl, p)
        for h in ('h1', 'h2'):
            self.assertLessEqual(
                sum(1 for s in 'abc' if where[s] == h), 2)
        self.assertTrue(p.moves)

    def test_affinity_member_never_moves_alone(self):
        groups = [self._group('affinity', ['a', 'b', 'c', 'd'])]
        fl, snap = fakes.build({'h1': ['a', 'b', 'c', 'd'], 'h2': []},
                               groups=groups)
        p = plan(fl, snap)
        self.assertEqual([], p.moves)
        self.assertIn('server-group', p.aggregates[0].rejections)

    def test_soft_anti_affinity_never_worsens(self):
        groups = [self._group('soft-anti-affinity', ['a', 'b'])]
        fl, snap = fakes.build({'h1': ['a', 'x', 'y', 'z'], 'h2': ['b']},
                               groups=groups)
        p = plan(fl, snap)
        where = final_hosts(fl, p)
        self.assertNotEqual(where['a'], where['b'])
        self.assertTrue(p.moves)

    def test_soft_affinity_only_joins_members(self):
        groups = [self._group('soft-affinity', ['a', 'b'])]
        fl, snap = fakes.build({'h1': ['a', 'b', 'x', 'y'], 'h2': []},
                               groups=groups)
        p = plan(fl, snap)
        moved = {m.server_id for m in p.moves}
        self.assertFalse(moved & {'a', 'b'})
        self.assertTrue(moved)


class TestScale(testtools.TestCase):

    def test_share_scales_with_host_size(self):
        # A server using 0.2 of a 16-vCPU host adds 0.1 on a 32-vCPU host.
        hosts = [fakes.host('h1', vcpus=16), fakes.host('h2', vcpus=32)]
        fl, snap = fakes.build({'h1': ['a', 'b', 'c', 'd'], 'h2': []},
                               hosts=hosts, share=0.2)
        ps = fakes.policy_set(cpu_weight=1.0, mem_weight=0.0,
                              resource='vcpu')
        p = plan(fl, snap, budget=1, ps=ps)
        agg = p.aggregates[0]
        self.assertAlmostEqual(0.1, agg.loads_after['cpu']['h2'])
        self.assertAlmostEqual(0.6, agg.loads_after['cpu']['h1'])


class TestPruning(testtools.TestCase):

    def _fleet(self, unusable=()):
        layout = {'h%d' % i: ['s%d-%d' % (i, j) for j in range(10 - i)]
                  for i in range(10)}
        hosts = [fakes.host(h, usable=h not in unusable,
                            unusable_reason='down' if h in unusable
                            else None) for h in layout]
        return fakes.build(layout, hosts=hosts, share=0.05)

    def test_pruned_pass_matches_full_scan_here(self):
        fl, snap = self._fleet()
        full = spread.SpreadPlanner(0.0001, prune_hosts=0).plan(
            fl, fakes.policy_set(), snap, 5)
        fl, snap = self._fleet()
        pruned = spread.SpreadPlanner(0.0001, prune_hosts=2).plan(
            fl, fakes.policy_set(), snap, 5)
        self.assertEqual(len(full.moves), len(pruned.moves))
        self.assertAlmostEqual(full.aggregates[0].imbalance_after,
                               pruned.aggregates[0].imbalance_after)

    def test_falls_back_to_every_pair_when_pruned_hosts_are_blocked(self):
        # The two least loaded hosts are down: the first pass finds nothing.
        fl, snap = self._fleet(unusable=('h8', 'h9'))
        p = spread.SpreadPlanner(0.0001, prune_hosts=2).plan(
            fl, fakes.policy_set(), snap, 3)
        self.assertEqual(3, len(p.moves))
        self.assertFalse({'h8', 'h9'} & {m.destination for m in p.moves})
