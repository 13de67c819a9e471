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


import calendar
import dataclasses

import numpy as np
import testtools

from nova_kronos.constraints import quarantine
from nova_kronos import fleet
from nova_kronos import history
from nova_kronos import planner
from nova_kronos.planner import spread
from nova_kronos.planner import state
from tests.unit import fakes


#: Plan every improving move (the tests predating aggressiveness levels).
EAGER = planner.Settings(aggressiveness=5, target_imbalance=0.0,
                         migration_cost=False)


def plan(fl, snap, budget=10, ps=None, settings=EAGER):
    return spread.SpreadPlanner(settings).plan(
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
        full = spread.SpreadPlanner(EAGER, prune_hosts=0).plan(
            fl, fakes.policy_set(), snap, 5)
        fl, snap = self._fleet()
        pruned = spread.SpreadPlanner(EAGER, prune_hosts=2).plan(
            fl, fakes.policy_set(), snap, 5)
        self.assertEqual(len(full.moves), len(pruned.moves))
        self.assertAlmostEqual(full.aggregates[0].imbalance_after,
                               pruned.aggregates[0].imbalance_after)

    def test_falls_back_to_every_pair_when_pruned_hosts_are_blocked(self):
        # The two least loaded hosts are down: the first pass finds nothing.
        fl, snap = self._fleet(unusable=('h8', 'h9'))
        p = spread.SpreadPlanner(EAGER, prune_hosts=2).plan(
            fl, fakes.policy_set(), snap, 3)
        self.assertEqual(3, len(p.moves))
        self.assertFalse({'h8', 'h9'} & {m.destination for m in p.moves})


# -- memory of recent live migrations (nova_kronos.history) -----------------

# 2026-11-27T07:00:00Z
NOW = calendar.timegm((2026, 11, 27, 7, 0, 0))


def build_shares(layout, groups=(), hosts=None, measured_extra=None):
    """Like fakes.build, with a share per server: {host: {server: share}}.

    Both policies get the same shares. Host loads are the sum of their
    servers' shares plus ``measured_extra`` {host: load} (what lagging
    metrics still count there).
    """
    fl, snap = fakes.build({h: sorted(s) for h, s in layout.items()},
                           groups=groups, hosts=hosts)
    for data in snap.data.values():
        for h, servers in layout.items():
            data.hosts[h] = sum(servers.values()) + (
                measured_extra or {}).get(h, 0.0)
            data.vms.update(servers)
    return fl, snap


def record(id, server, source, destination, status='completed', age=60.0):
    return history.MigrationRecord(
        id=id, server_id=server, source=source, destination=destination,
        status=status, created_at=NOW - age - 30, updated_at=NOW - age)


def memory(records, settle=300.0):
    return history.remember(records, NOW, history.MemoryOptions(),
                            {'cpu': settle, 'mem': settle} if settle else {})


def plan_with(fl, snap, mem, budget=10, ps=None):
    return spread.SpreadPlanner(EAGER).plan(
        fl, ps or fakes.policy_set(), snap, budget, memory=mem)


def moves(p):
    return [(m.server_id, m.source, m.destination) for m in p.moves]


class TestMemory(testtools.TestCase):

    def assertLoads(self, expected, loads):
        self.assertEqual(sorted(expected), sorted(loads))
        for h, v in expected.items():
            self.assertAlmostEqual(v, loads[h], msg=h)

    def test_empty_memory_changes_nothing(self):
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': []})
        without = plan(fl, snap)
        with_empty = plan_with(fl, snap, history.Memory())
        self.assertEqual(moves(without), moves(with_empty))
        self.assertEqual([], with_empty.overlay)

    def test_back_to_back_runs_do_not_correct_twice(self):
        # First run: h1 0.4 (a 0.1, b 0.2, c 0.1), h2 0.0. A move of share
        # s to h2 changes the sum of squared loads by 2s(s + 0 - 0.4):
        # a, c -0.06, b -0.08; b to h2 leaves 0.2 / 0.2, balanced.
        layout = {'h1': {'a': 0.1, 'b': 0.2, 'c': 0.1}, 'h2': {}}
        fl, snap = build_shares(layout)
        self.assertEqual([('b', 'h1', 'h2')], moves(plan(fl, snap)))

        # Second run, a minute later: Nova shows b on h2, Prometheus'
        # rate windows still show the SAME loads (h1 0.4, h2 0.0).
        fl.servers['b'].host = 'h2'
        done = [record(1, 'b', 'h1', 'h2', age=60.0)]

        # Without memory the planner corrects the imbalance again: a and
        # c (0.1 each) go to h2 (0.4/0.0 -> 0.3/0.1 -> 0.2/0.2).
        again = plan(fl, snap)
        self.assertEqual({'a', 'c'}, {m.server_id for m in again.moves})
        # A cooldown alone does not help: b is left alone, a and c move.
        cooled = plan_with(fl, snap, memory(done, settle=0))
        self.assertEqual({'a', 'c'}, {m.server_id for m in cooled.moves})

        # With the migration settling (60 s old, 300 s settle time), b's
        # 0.2 is moved from h1 to h2 on both policies: 0.2 / 0.2.
        p = plan_with(fl, snap, memory(done))
        self.assertEqual([], p.moves)
        agg = p.aggregates[0]
        self.assertAlmostEqual(0.0, agg.imbalance_before)
        for name in ('cpu', 'mem'):
            self.assertLoads({'h1': 0.2, 'h2': 0.2}, agg.loads_before[name])
        self.assertEqual([{'server_id': 'b', 'source': 'h1',
                           'destination': 'h2', 'state': 'completed',
                           'policies': ['cpu', 'mem']}], p.overlay)
        # The snapshot itself is not modified.
        self.assertEqual(0.4, snap.data['cpu'].hosts['h1'])
        self.assertIn(('server', 'b',
                       'live-migrated 1 time in the last 24 h, last at '
                       '2026-11-27T06:59:00Z; cooldown until '
                       '2026-11-27T07:59:00Z; not moved'), p.exclusions)

    def _in_flight_fleet(self, group_policy):
        # x (0.1) and y (0.1) are anti-affine; x is being live-migrated
        # from h1 to h3 and Nova still shows it on h1.
        groups = [fleet.ServerGroup(id='g', name='g', policy=group_policy,
                                    members=('x', 'y'))]
        fl, snap = build_shares({'h1': {'x': 0.1, 'p': 0.3},
                                 'h2': {'y': 0.1, 'q': 0.3}, 'h3': {}},
                                groups=groups)
        fl.servers['x'].task_state = 'migrating'
        mem = memory([record(7, 'x', 'h1', 'h3', status='running',
                             age=30.0)])
        return fl, snap, mem

    def test_in_flight_migration(self):
        fl, snap, mem = self._in_flight_fleet('anti-affinity')
        p = plan_with(fl, snap, mem)
        # Overlay: h1 0.4 - 0.1 = 0.3, h2 0.4, h3 0.0 + 0.1 = 0.1.
        agg = p.aggregates[0]
        for name in ('cpu', 'mem'):
            self.assertLoads({'h1': 0.3, 'h2': 0.4, 'h3': 0.1},
                             agg.loads_before[name])
        self.assertEqual([{'server_id': 'x', 'source': 'h1',
                           'destination': 'h3', 'state': 'in progress',
                           'policies': ['cpu', 'mem']}], p.overlay)
        self.assertIn(('server', 'x',
                       'live migration 7 in progress (status running) from '
                       'h1 to h3 since 2026-11-27T06:59:00Z; not moved'),
                      p.exclusions)
        # Half the change in the sum of squared loads, s(s + Ld - Ls):
        # y->h3 0.1(0.1+0.1-0.4) = -0.02, the only move that helps, and y
        # may not join x on h3 (nor on h1): y->h1 0.1(0.1+0.3-0.4) = 0,
        # p->h3 and q->h3 0.3(0.3+0.1-0.3 or 0.4) >= 0.03, the rest worse.
        self.assertEqual([], p.moves)
        self.assertEqual({'server-group': 2}, agg.rejections)

    def test_in_flight_member_counts_for_soft_anti_affinity(self):
        # y may only go where fewer members are than on h2 (1, itself);
        # h3 holds x in flight (1): refused too.
        fl, snap, mem = self._in_flight_fleet('soft-anti-affinity')
        p = plan_with(fl, snap, mem)
        self.assertEqual([], p.moves)
        self.assertEqual({'server-group': 2}, p.aggregates[0].rejections)

    def test_in_flight_control_without_a_group(self):
        # Same loads, no group: y -> h3 (-0.02) is planned.
        fl, snap, mem = self._in_flight_fleet('anti-affinity')
        fl.groups.clear()
        fl.servers['y'].group_id = fl.servers['x'].group_id = None
        self.assertEqual([('y', 'h2', 'h3')], moves(plan_with(fl, snap, mem)))

    # h1 0.35 (a 0.2, b 0.1, e 0.05), h2 0.1 (c), h3 0.0. Half the change in
    # the sum of squared loads, s(s + Ld - Ls): a->h3 -0.03, b->h3 -0.025,
    # a->h2 -0.01, b->h2 and e->h3 -0.015, e->h2 -0.01, c->h3 0.
    QLAYOUT = {'h1': {'a': 0.2, 'b': 0.1, 'e': 0.05}, 'h2': {'c': 0.1},
               'h3': {}}

    def test_quarantined_pair_gives_the_next_best(self):
        fl, snap = build_shares(self.QLAYOUT)
        self.assertEqual([('a', 'h1', 'h3')], moves(plan(fl, snap, 1)))
        mem = memory([record(1, 'a', 'h1', 'h3', status='failed')])
        p = plan_with(fl, snap, mem, budget=1)
        self.assertEqual([('b', 'h1', 'h3')], moves(p))
        self.assertEqual({'quarantine': 1}, p.aggregates[0].rejections)

    def test_server_wide_quarantine(self):
        fl, snap = build_shares(self.QLAYOUT)
        mem = memory([record(1, 'a', 'h1', None, status='error')])
        p = plan_with(fl, snap, mem, budget=1)
        self.assertEqual([('b', 'h1', 'h3')], moves(p))
        # a->h2 and a->h3.
        self.assertEqual({'quarantine': 2}, p.aggregates[0].rejections)
        p = plan_with(fl, snap, mem)
        self.assertTrue(p.moves)
        self.assertNotIn('a', {m.server_id for m in p.moves})

    def test_quarantine_in_another_run_is_added(self):
        fl, snap = build_shares(self.QLAYOUT)
        mem = memory([])
        mem.add_quarantine('a', 'h3', NOW + 60, 'refused in this run')
        p = plan_with(fl, snap, mem, budget=1)
        self.assertEqual([('b', 'h1', 'h3')], moves(p))

    def test_cooldown(self):
        fl, snap = build_shares(self.QLAYOUT)
        mem = memory([record(1, 'a', 'h2', 'h1', age=600.0)], settle=0)
        p = plan_with(fl, snap, mem, budget=1)
        self.assertEqual([('b', 'h1', 'h3')], moves(p))
        self.assertIn(('server', 'a',
                       'live-migrated 1 time in the last 24 h, last at '
                       '2026-11-27T06:50:00Z; cooldown until '
                       '2026-11-27T07:50:00Z; not moved'), p.exclusions)
        self.assertEqual({}, p.aggregates[0].rejections)

    def test_quarantine_and_overlay_hold_over_several_moves(self):
        # x (0.15) went h1 -> h3 a minute ago; metrics still count it on
        # h1: measured h1 0.9, h2 0.1, h3 0.0, h4 0.0. Overlaid:
        # h1 0.75 (b 0.2, c 0.25, d 0.3), h2 0.1 (a), h3 0.15, h4 0.0.
        # Quarantined: (b, h2) and (a, h3). s(s + Ld - Ls) per move:
        # step 1: d->h4 -0.135, c->h4 -0.125, b->h4 -0.11, d->h2 -0.105
        #   -> d to h4: h1 0.45, h2 0.1, h3 0.15, h4 0.3;
        # step 2: b->h2 -0.03 (quarantined), c->h2 -0.025, b->h3 -0.02
        #   -> c to h2: h1 0.2, h2 0.35, h3 0.15, h4 0.3;
        # step 3: a->h3 -0.01 (quarantined), a->h1 -0.005, others >= 0.005
        #   -> a to h1: h1 0.3, h2 0.25, h3 0.15, h4 0.3.
        layout = {'h1': {'b': 0.2, 'c': 0.25, 'd': 0.3}, 'h2': {'a': 0.1},
                  'h3': {'x': 0.15}, 'h4': {}}
        fl, snap = build_shares(layout, measured_extra={'h1': 0.15,
                                                        'h3': -0.15})
        done = record(1, 'x', 'h1', 'h3', age=60.0)
        failed = [record(2, 'b', 'h1', 'h2', status='failed', age=120.0),
                  record(3, 'a', 'h2', 'h3', status='error', age=120.0)]

        p = plan_with(fl, snap, memory([done] + failed), budget=3)
        self.assertEqual([('d', 'h1', 'h4'), ('c', 'h1', 'h2'),
                          ('a', 'h2', 'h1')], moves(p))
        agg = p.aggregates[0]
        for name in ('cpu', 'mem'):
            self.assertLoads({'h1': 0.75, 'h2': 0.1, 'h3': 0.15, 'h4': 0.0},
                             agg.loads_before[name])
            self.assertLoads({'h1': 0.3, 'h2': 0.25, 'h3': 0.15, 'h4': 0.3},
                             agg.loads_after[name])
        # Step 3's candidates are b (h1) and a (h2): b->h2 and a->h3 are
        # still masked, nothing else is.
        self.assertEqual({'quarantine': 2}, agg.rejections)

        # Control: without the quarantine step 2 is b -> h2 (-0.03).
        p = plan_with(fl, snap, memory([done]), budget=3)
        self.assertEqual([('d', 'h1', 'h4'), ('b', 'h1', 'h2')],
                         moves(p)[:2])


class TestOverlay(testtools.TestCase):

    def test_scaled_like_a_planned_move_and_clipped_to_scope(self):
        # cpu names vCPUs: 0.2 of a 16-vCPU host is 0.1 of a 32-vCPU one.
        hosts = [fakes.host('h1', vcpus=16), fakes.host('h2', vcpus=32)]
        fl, snap = build_shares({'h1': {'a': 0.2, 'c': 0.1},
                                 'h2': {'b': 0.1}}, hosts=hosts)
        snap.data['cpu'].vms.update(z=0.3, w=0.6)
        snap.data['mem'].vms.update(z=0.3)
        mem = memory([
            record(1, 'a', 'h1', 'h2', status='running'),
            # From a host outside the scope: only h2 gains (k = 1).
            record(2, 'z', 'hx', 'h2', status='running'),
            # Its load exceeds what h1 shows: clipped at 0.
            record(3, 'w', 'h1', 'hy', status='running'),
            # Between two hosts outside the scope: not listed.
            record(4, 'v', 'hx', 'hy', status='running'),
            # No share at all.
            record(5, 'u', 'h1', 'h2', status='running'),
        ])
        ps = fakes.policy_set(resource='vcpu')
        p = spread.SpreadPlanner(EAGER).plan(fl, ps, snap, 0, memory=mem)
        loads = p.aggregates[0].loads_before
        # cpu h1: 0.3 - 0.2 (a) - 0.6 (w) < 0 -> 0.0;
        #     h2: 0.1 + 0.2 * 16/32 (a) + 0.3 (z) = 0.5.
        self.assertAlmostEqual(0.0, loads['cpu']['h1'])
        self.assertAlmostEqual(0.5, loads['cpu']['h2'])
        # mem (no resource): h1 0.3 - 0.2 = 0.1; h2 0.1 + 0.2 + 0.3 = 0.6.
        self.assertAlmostEqual(0.1, loads['mem']['h1'])
        self.assertAlmostEqual(0.6, loads['mem']['h2'])
        by_server = {e['server_id']: e for e in p.overlay}
        self.assertEqual(['a', 'u', 'w', 'z'], sorted(by_server))
        self.assertEqual(['cpu'], by_server['w']['policies'])
        self.assertEqual('no share for policy mem', by_server['w']['skipped'])
        self.assertEqual([], by_server['u']['policies'])
        self.assertEqual('no share for policy cpu, mem',
                         by_server['u']['skipped'])
        self.assertNotIn('skipped', by_server['a'])


class TestStateMemory(testtools.TestCase):

    def _state(self, **kw):
        groups = [fleet.ServerGroup(id='g', name='g', policy='anti-affinity',
                                    members=('a', 'x'))]
        fl, snap = fakes.build({'h1': ['a', 'b'], 'h2': ['x'], 'h3': [],
                                'h4': []}, groups=groups)
        ps = fakes.policy_set()
        return state.PlanningState(
            fl, ps.enabled, {p: d.hosts for p, d in snap.data.items()},
            {p: d.vms for p, d in snap.data.items()},
            ['h1', 'h2', 'h3', 'h4'], ['a', 'b'], **kw)

    def test_quarantine_mask_on_any_subset_and_order(self):
        st = self._state(quarantine=[('a', 'h3'), ('b', None),
                                     ('a', 'elsewhere'), ('zz', 'h1')])
        # Candidates a=0, b=1; hosts h1..h4 = 0..3, asked in reverse.
        ok = quarantine.allowed(st, np.array([0, 1]), np.array([3, 2, 1, 0]))
        self.assertEqual([[True, False, True, True],
                          [False, False, False, False]], ok.tolist())
        ok = quarantine.allowed(st, np.array([0]), np.array([2]))
        self.assertEqual([[False]], ok.tolist())
        st.apply(0, 3)
        st.apply(1, 1)
        ok = quarantine.allowed(st, np.array([0, 1]), np.array([0, 1, 2]))
        self.assertEqual([[True, True, False], [False, False, False]],
                         ok.tolist())

    def test_no_quarantine(self):
        st = self._state()
        ok = quarantine.allowed(st, np.array([0, 1]), np.array([0, 1, 2]))
        self.assertTrue(ok.all())

    def test_in_flight_member_counts_on_both_hosts(self):
        # x is on h2 (Nova), in flight to h4.
        st = self._state(in_flight=[('x', 'h2', 'h4')])
        self.assertEqual([[1, 1, 0, 1]], st.group_counts.tolist())
        # Nova already shows x on its destination: counted on h2 as well.
        st = self._state(in_flight=[('x', 'h4', 'h2')])
        self.assertEqual([[1, 1, 0, 1]], st.group_counts.tolist())
        # Not a member of any group: nothing counted.
        st = self._state(in_flight=[('b', 'h1', 'h3')])
        self.assertEqual([[1, 1, 0, 0]], st.group_counts.tolist())

    def test_scale_factor(self):
        self.assertEqual(0.5, float(state.scale_factor(16.0, 32.0)))
        self.assertEqual(1.0, float(state.scale_factor(0.0, 32.0)))
        self.assertEqual(1.0, float(state.scale_factor(16.0, 0.0)))
        self.assertEqual([[2.0, 1.0]], state.scale_factor(
            np.array([[32.0]]), np.array([[16.0, 0.0]])).tolist())
