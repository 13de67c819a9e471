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


"""Stopping rule, migration cost, and the pack and drain planners.

Expected values are worked by hand in the comments (loads are sums of
0.1 shares unless said otherwise; both fake policies see the same loads,
so the combined imbalance is the standard deviation of one of them).
"""

import numpy as np
import testtools

from nova_kronos import fleet
from nova_kronos import planner
from nova_kronos.planner import base
from nova_kronos.planner import drain
from nova_kronos.planner import pack
from nova_kronos.planner import spread
from nova_kronos import scoring
from tests.unit import fakes


def resize(fl, sid, memory_mb=None, vcpus=None, **attrs):
    """Change a server's flavor, keeping its host's allocations right."""
    s = fl.servers[sid]
    h = fl.hosts[s.host]
    if memory_mb is not None:
        h.memory_mb_used += memory_mb - s.memory_mb
        s.memory_mb = memory_mb
    if vcpus is not None:
        h.vcpus_used += vcpus - s.vcpus
        s.vcpus = vcpus
    for k, v in attrs.items():
        setattr(s, k, v)


def loads_after(fl, snap, p, policy='cpu'):
    """Host loads once ``p``'s moves are done (equal hosts: k = 1)."""
    out = dict(snap.data[policy].hosts)
    for m in p.moves:
        share = snap.data[policy].vms[m.server_id]
        out[m.source] -= share
        out[m.destination] += share
    return out


class TestGain(testtools.TestCase):

    def test_gain_is_in_host_load_units(self):
        # Loads 0.5/0.3/0.3/0.1: sigma = sqrt(0.02); moving 0.1 from the
        # first to the last: 0.4/0.3/0.3/0.2, sigma = sqrt(0.005).
        # gain = 4 * (0.141421 - 0.070711) / 2 = 0.141421.
        self.assertAlmostEqual(
            0.1414214, planner.gain(np.sqrt(0.02), np.sqrt(0.005), 4),
            places=6)

    def _halves(self, n_hosts):
        # Half the hosts carry 6 servers (0.6), half 2 (0.2): sigma 0.2.
        layout = {'h%04d' % i: ['s%04d-%d' % (i, j)
                                for j in range(6 if i < n_hosts // 2 else 2)]
                  for i in range(n_hosts)}
        return fakes.build(layout)

    def test_defaults_plan_the_same_moves_at_every_scale(self):
        # First move: 0.1 from a 0.6 host to a 0.2 host lowers the sum of
        # squared deviations by 2 * 0.1 * (0.4 - 0.1) = 0.06, so sigma goes
        # from 0.2 to sqrt(0.04 - 0.06 / H):
        #   H = 20:   gain = 10 * (0.2 - 0.1923538) = 0.0764616
        #   H = 100:  gain = 50 * (0.2 - 0.1984943) = 0.0752831
        #   H = 1000: gain = 500 * (0.2 - 0.1998499) = 0.0750281
        # Every one is above level 3's smallest gain (0.005), while the
        # drop of sigma itself (0.0001501 at H = 1000) is far below the
        # old absolute default (0.001).
        for n_hosts, expected in ((20, 0.0764616), (100, 0.0752831),
                                  (1000, 0.0750281)):
            fl, snap = self._halves(n_hosts)
            p = spread.SpreadPlanner().plan(fl, fakes.policy_set(), snap, 5)
            self.assertEqual(5, len(p.moves), n_hosts)
            first = p.moves[0]
            self.assertAlmostEqual(expected, planner.gain(
                first.imbalance_before, first.imbalance_after, n_hosts),
                places=6)
            if n_hosts == 1000:
                self.assertLess(
                    first.imbalance_before - first.imbalance_after, 0.001)

    def test_gain_bound_holds_for_every_move(self):
        rng = np.random.default_rng(7)
        for _ in range(200):
            n_pol, n_hosts, n_srv = rng.integers(1, 3), rng.integers(2, 8), 12
            loads = rng.uniform(0, 1, (n_pol, n_hosts))
            weights = rng.dirichlet(np.ones(n_pol))
            cap = rng.choice([0.0, 8.0, 16.0, 64.0], (n_pol, n_hosts))
            src = rng.integers(0, n_hosts, n_srv)
            shares = rng.uniform(0, 1, (n_pol, n_srv)) * loads[:, src]
            k = np.stack([spread.state_mod.scale_factor(
                cap[p][src][:, None], cap[p][None, :])
                for p in range(n_pol)])
            cur = scoring.imbalance(loads, weights)
            gains = planner.gain(cur, scoring.candidate_imbalance(
                loads, weights, src, shares, k), n_hosts)
            bound = spread.gain_bound(loads, weights, cap)
            self.assertTrue(
                np.all(gains <= bound[src] + 1e-9),
                (gains - bound[src]).max())


class TestStopping(testtools.TestCase):

    def _fleet(self):
        # Four hosts at 0.30/0.20/0.20/0.20 (shares 0.05): mean 0.225,
        # sigma = sqrt((0.075^2 + 3 * 0.025^2) / 4) = 0.0433.
        # Moving 0.05 from h1 to h2 gives 0.25/0.25/0.20/0.20, sigma
        # 0.025, gain 4 * 0.0183 / 2 = 0.0366; then no move gains.
        return fakes.build({'h1': list('abcdef'), 'h2': list('ghij'),
                            'h3': list('klmn'), 'h4': list('opqr')},
                           share=0.05)

    def _plan(self, **settings):
        fl, snap = self._fleet()
        return spread.SpreadPlanner(planner.Settings(**settings)).plan(
            fl, fakes.policy_set(), snap, 10)

    def test_level_3_tolerates_the_imbalance(self):
        p = self._plan(aggressiveness=3)
        self.assertEqual([], p.moves)
        self.assertAlmostEqual(0.0433013, p.aggregates[0].imbalance_before,
                               places=6)

    def test_level_4_moves_once(self):
        p = self._plan(aggressiveness=4)
        self.assertEqual(1, len(p.moves))
        self.assertEqual('h1', p.moves[0].source)
        self.assertAlmostEqual(0.025, p.moves[0].imbalance_after)

    def test_target_overrides_the_level(self):
        self.assertEqual([], self._plan(aggressiveness=5,
                                        target_imbalance=0.05).moves)
        self.assertEqual(1, len(self._plan(aggressiveness=3,
                                           target_imbalance=0.03).moves))

    def test_target_stops_with_the_fewest_moves(self):
        # h1 at 0.6, h2..h4 at 0.0 (share 0.1): mean 0.15, sigma 0.2598.
        # Each move from h1 to an empty host: 0.5/0.1/0/0 sigma
        # sqrt(0.17 / 4) = 0.2062, then 0.4/0.1/0.1/0 sigma
        # sqrt(0.09 / 4) = 0.15: the target 0.2 needs exactly two.
        fl, snap = fakes.build({'h1': list('abcdef'), 'h2': [], 'h3': [],
                                'h4': []})
        p = spread.SpreadPlanner(planner.Settings(
            aggressiveness=5, target_imbalance=0.2)).plan(
                fl, fakes.policy_set(), snap, 10)
        self.assertEqual(2, len(p.moves))
        self.assertAlmostEqual(0.15, p.moves[-1].imbalance_after)

    def test_level_1_only_relieves_hosts_above_a_threshold(self):
        # Threshold 0.5: h1 at 0.6 is above it. One move brings it to 0.5
        # (within: load <= threshold); level 1 then stops, although the
        # aggregate (0.5/0.2/0.1) is far from balanced, and level 3 goes on.
        fl, snap = fakes.build({'h1': list('abcdef'), 'h2': ['g', 'h'],
                                'h3': ['i']})
        ps = fakes.policy_set(threshold=0.5)
        p1 = spread.SpreadPlanner(planner.Settings(aggressiveness=1)).plan(
            fl, ps, snap, 10)
        self.assertEqual(1, len(p1.moves))
        self.assertEqual(('h1', 'h3'), (p1.moves[0].source,
                                        p1.moves[0].destination))
        fl, snap = fakes.build({'h1': list('abcdef'), 'h2': ['g', 'h'],
                                'h3': ['i']})
        p3 = spread.SpreadPlanner().plan(fl, ps, snap, 10)
        self.assertGreater(len(p3.moves), 1)

    def test_bad_settings_name_the_field(self):
        for kw, word in (({'aggressiveness': 6}, 'aggressiveness'),
                         ({'target_imbalance': 0.7}, 'target imbalance'),
                         ({'max_migrated_gib': -1}, 'max migrated GiB'),
                         ({'migration_rate': 0}, 'migration rate')):
            e = self.assertRaises(ValueError, planner.Settings, **kw)
            self.assertIn(word, str(e))


class TestMigrationCost(testtools.TestCase):

    def _fleet(self, big_share=0.1):
        # h1: 'big' (32 GiB) and 'small' (2 GiB) plus two 1 GiB fillers
        # ('x', 'y'), h2 empty.
        fl, snap = fakes.build({'h1': ['big', 'small', 'x', 'y'], 'h2': []})
        resize(fl, 'big', memory_mb=32768)
        resize(fl, 'small', memory_mb=2048)
        for pol in snap.data.values():
            pol.hosts['h1'] += big_share - pol.vms['big']
            pol.vms['big'] = big_share
        return fl, snap

    def _first(self, fl, snap, cost):
        p = spread.SpreadPlanner(planner.Settings(
            aggressiveness=5, migration_cost=cost)).plan(
                fl, fakes.policy_set(), snap, 1)
        return p.moves[0]

    def test_equal_gain_moves_the_smaller_server(self):
        # 'big', 'small', 'x', 'y' all carry 0.1: equal gains. Per GiB
        # (+1 GiB fixed): x and y (1 GiB) rank first, 'big' last.
        fl, snap = self._fleet()
        m = self._first(fl, snap, cost=True)
        self.assertEqual('x', m.server_id)
        self.assertEqual(1.0, m.gib)
        fl, snap = self._fleet()
        self.assertEqual('big', self._first(fl, snap, cost=False).server_id)

    def test_gain_per_gib_beats_raw_gain(self):
        # 'big' carries 0.2 (h1 at 0.5, h2 at 0): moving it gives
        # 0.3/0.2, sigma 0.05, gain 2 * (0.25 - 0.05) / 2 = 0.2; moving a
        # 1 GiB server gives 0.4/0.1, sigma 0.15, gain 0.1. Per cost:
        # 0.2 / 33 = 0.006 against 0.1 / 2 = 0.05.
        fl, snap = self._fleet(big_share=0.2)
        self.assertEqual('big', self._first(fl, snap, cost=False).server_id)
        fl, snap = self._fleet(big_share=0.2)
        self.assertEqual('x', self._first(fl, snap, cost=True).server_id)

    def test_max_migrated_gib(self):
        # 3 GiB allowed: one 2 GiB server, then 1 GiB left for nothing
        # bigger than 1 GiB; the 1 GiB servers would fit: x then stop.
        fl, snap = fakes.build({'h1': list('abcdef'), 'h2': []})
        for sid in 'abcdef':
            resize(fl, sid, memory_mb=2048)
        p = spread.SpreadPlanner(planner.Settings(
            aggressiveness=5, max_migrated_gib=5)).plan(
                fl, fakes.policy_set(), snap, 10)
        self.assertEqual(2, len(p.moves))
        self.assertEqual(4.0, p.migrated_gib)

    def test_block_migration_counts_the_root_disk(self):
        s = fleet.Server(id='s', name='s', host='h', vcpus=2, memory_mb=4096,
                         image_id='img', flavor_disk_gb=20)
        self.assertEqual((24.0, True), planner.Settings().move_gib(s))
        self.assertEqual((4.0, False), planner.Settings(
            shared_storage=True).move_gib(s))
        s.image_id = None   # booted from a volume
        self.assertEqual((4.0, False), planner.Settings().move_gib(s))

    def test_moves_report_gib_and_duration(self):
        fl, snap = fakes.build({'h1': list('abcd'), 'h2': []})
        for sid in 'abcd':
            resize(fl, sid, memory_mb=4096, image_id='img',
                   flavor_disk_gb=20)
        p = spread.SpreadPlanner(planner.Settings(
            aggressiveness=5, migration_rate=512)).plan(
                fl, fakes.policy_set(), snap, 1)
        m = p.moves[0]
        self.assertEqual((24.0, True), (m.gib, m.block_migration))
        # 24 GiB = 24576 MiB at 512 MiB/s.
        self.assertAlmostEqual(48.0, m.estimated_seconds)
        self.assertAlmostEqual(48.0, p.estimated_seconds)


class TestChunks(testtools.TestCase):

    def test_chunked_scoring_plans_the_same_moves(self):
        layout = {'h%d' % i: ['s%d-%d' % (i, j) for j in range(9 - i)]
                  for i in range(8)}

        def run():
            fl, snap = fakes.build(layout, share=0.05)
            return [(m.server_id, m.destination)
                    for m in spread.SpreadPlanner(planner.Settings(
                        aggressiveness=5)).plan(
                            fl, fakes.policy_set(), snap, 8).moves]
        whole = run()
        self.patch(base, 'CHUNK_PAIRS', 5)
        self.assertEqual(whole, run())
        self.assertTrue(whole)

    def test_chunks_rescored_for_nova_s_rules_plan_the_same_moves(self):
        # With an oracle the chunks are scored again, best first.
        from tests.unit import test_feasibility
        layout = {'h%d' % i: ['s%d-%d' % (i, j) for j in range(9 - i)]
                  for i in range(8)}

        def run():
            fl, snap = fakes.build(layout, share=0.05)
            for s in fl.servers.values():
                s.flavor_name = 'ssd' if s.id.endswith('-0') else 'std'
            oracle = test_feasibility.RuleOracle({'ssd': {'h0', 'h1'}})
            return [(m.server_id, m.destination)
                    for m in spread.SpreadPlanner(planner.Settings(
                        aggressiveness=5)).plan(
                            fl, fakes.policy_set(), snap, 8,
                            oracle=oracle).moves]
        whole = run()
        self.patch(base, 'CHUNK_PAIRS', 5)
        self.assertEqual(whole, run())
        self.assertTrue(whole)


class TestPack(testtools.TestCase):

    def _fleet(self):
        # h1 0.5, h2 0.3, h3 0.1, h4 0.2 (shares 0.1).
        return fakes.build({'h1': list('abcde'), 'h2': list('fgh'),
                            'h3': ['i'], 'h4': ['j', 'k']})

    def _plan(self, budget=10, threshold=0.9, fl=None, snap=None):
        if fl is None:
            fl, snap = self._fleet()
        return pack.PackPlanner().plan(
            fl, fakes.policy_set(mode='pack', threshold=threshold), snap,
            budget)

    def test_empties_the_least_loaded_hosts_into_the_fullest(self):
        # h3 (0.1) then h4 (0.2) are emptied into h1, the fullest that
        # fits: 0.6, 0.7, 0.8. h2 (0.3) next: its first server (f) would
        # fit on h1 (0.9), its second (g) not (1.0 > 0.9), and h1 is the
        # only host left to receive: h2 is left whole.
        p = self._plan()
        self.assertEqual([('i', 'h3', 'h1'), ('j', 'h4', 'h1'),
                          ('k', 'h4', 'h1')],
                         [(m.server_id, m.source, m.destination)
                          for m in p.moves])
        self.assertEqual(['h3', 'h4'], p.aggregates[0].freed_hosts)
        self.assertIn(('host', 'h2', 'not emptied: server g fits on no '
                                     'other host (threshold 1)'),
                      p.exclusions)
        self.assertAlmostEqual(0.8, p.aggregates[0].loads_after['cpu']['h1'])
        self.assertEqual('pack', p.planner)

    def test_budget_is_checked_before_a_host_is_started(self):
        # Budget 2: h3 (1 move) is emptied; h4 needs 2 with 1 left, h2
        # and h1 more: none of them is started.
        p = self._plan(budget=2)
        self.assertEqual([('i', 'h3')], [(m.server_id, m.source)
                                         for m in p.moves])
        self.assertIn(('host', 'h4', 'not emptied: 2 live migration(s) '
                                     'needed, 1 left in the budget'),
                      p.exclusions)

    def test_a_server_that_may_not_move_keeps_its_host(self):
        fl, snap = self._fleet()
        fl.servers['i'].status = 'SHUTOFF'
        p = self._plan(fl=fl, snap=snap)
        self.assertNotIn('h3', {m.source for m in p.moves})
        self.assertNotIn('h3', p.aggregates[0].freed_hosts)
        self.assertIn(('host', 'h3', 'not emptied: server i on it may not '
                                     'move'), p.exclusions)
        # h4 is emptied into h1 instead (0.6, 0.7), then h2: f and g to
        # h1 (0.8, 0.9), h to h3 (kept, so it may receive: 0.2).
        self.assertEqual(['h4', 'h2'], p.aggregates[0].freed_hosts)
        self.assertEqual([('f', 'h1'), ('g', 'h1'), ('h', 'h3')],
                         [(m.server_id, m.destination)
                          for m in p.moves if m.source == 'h2'])

    def test_emptied_hosts_never_receive_and_receivers_are_kept(self):
        # Threshold 0.35: h3's server goes to h2 (0.3 -> 0.4 > 0.35: no),
        # h4 (0.2 -> 0.3, fullest that fits). h4 received, so it is never
        # emptied; h2 (0.3) then has nowhere to go (h1 at 0.5 is over).
        p = self._plan(threshold=0.35)
        self.assertEqual([('i', 'h3', 'h4')],
                         [(m.server_id, m.source, m.destination)
                          for m in p.moves])
        self.assertEqual(['h3'], p.aggregates[0].freed_hosts)

    def test_a_host_that_received_is_not_emptied_after(self):
        # h1 0.1 and h2 0.1 (ties: h1 first), h3 empty. a goes to the
        # fullest host that fits, h2 (0.2). Emptying h2 next would move a
        # a second time and undo the consolidation: h2 is kept.
        fl, snap = fakes.build({'h1': ['a'], 'h2': ['b'], 'h3': []})
        p = self._plan(fl=fl, snap=snap)
        self.assertEqual([('a', 'h1', 'h2')],
                         [(m.server_id, m.source, m.destination)
                          for m in p.moves])
        self.assertEqual(['h1'], p.aggregates[0].freed_hosts)

    def test_with_nova_s_rules(self):
        # The fake oracle allows flavor 'pinned' on h2 and h4 only: h3's
        # server i (pinned) goes to the fuller of them, h2 (0.3 -> 0.4),
        # not to h1; h2 is then kept, and h4's two servers go to h1.
        from tests.unit import test_feasibility
        fl, snap = self._fleet()
        fl.servers['i'].flavor_name = 'pinned'
        oracle = test_feasibility.RuleOracle({'pinned': {'h2', 'h4'}})
        p = pack.PackPlanner().plan(
            fl, fakes.policy_set(mode='pack'), snap, 10, oracle=oracle)
        self.assertEqual([('i', 'h3', 'h2'), ('j', 'h4', 'h1'),
                          ('k', 'h4', 'h1')],
                         [(m.server_id, m.source, m.destination)
                          for m in p.moves])
        self.assertEqual(['h3', 'h4'], p.aggregates[0].freed_hosts)
        # Every planned move was told to Nova's rules, and asked first.
        self.assertEqual([(m.server_id, m.source, m.destination)
                          for m in p.moves], oracle.moves)
        self.assertIn(('pinned', 'h2'), oracle.asked)

    def test_no_pack_policy_no_moves(self):
        fl, snap = self._fleet()
        p = pack.PackPlanner().plan(fl, fakes.policy_set(), snap, 10)
        self.assertEqual([], p.moves)
        self.assertIn(('policy', '*', 'no pack-mode policy is enabled: '
                                      'nothing for the pack planner to '
                                      'balance'), p.exclusions)

    def test_loaded_through_stevedore(self):
        self.assertIsInstance(planner.load_planner('pack'),
                              pack.PackPlanner)


class TestDrain(testtools.TestCase):

    def _plan(self, fl, snap, hosts=('h1',), budget=10, ps=None):
        return drain.DrainPlanner(hosts).plan(
            fl, ps or fakes.policy_set(), snap, budget)

    def test_every_server_leaves_and_the_rest_stays_balanced(self):
        # Kept hosts h2 0.1, h3 0.2, h4 0.0. a -> h4 (0.1/0.2/0.1), b ->
        # h2 (ties with h4; 0.2/0.2/0.1), c -> h4: 0.2 everywhere.
        fl, snap = fakes.build({'h1': list('abc'), 'h2': ['d'],
                                'h3': ['e', 'f'], 'h4': []})
        p = self._plan(fl, snap)
        self.assertEqual([('a', 'h4'), ('b', 'h2'), ('c', 'h4')],
                         [(m.server_id, m.destination) for m in p.moves])
        agg = p.aggregates[0]
        self.assertEqual(['h2', 'h3', 'h4'], agg.hosts)
        self.assertAlmostEqual(0.0, agg.imbalance_after)
        self.assertEqual(['h1'], agg.freed_hosts)
        self.assertEqual([], p.unmovable)
        self.assertEqual('drain', p.planner)

    def test_an_unmovable_server_is_reported_and_the_others_move(self):
        # 'a' is in an anti-affinity group with a member on every other
        # host: it can go nowhere; b and c still leave.
        fl, snap = fakes.build(
            {'h1': list('abc'), 'h2': ['x2'], 'h3': ['x3']},
            groups=[fleet.ServerGroup('g', 'g', 'anti-affinity',
                                      ('a', 'x2', 'x3'))])
        p = self._plan(fl, snap)
        self.assertEqual({'b', 'c'}, {m.server_id for m in p.moves})
        self.assertEqual(1, len(p.unmovable))
        sid, why = p.unmovable[0]
        self.assertEqual('a', sid)
        self.assertIn('server-group 2', why)
        self.assertEqual([], p.aggregates[0].freed_hosts)

    def test_largest_first(self):
        # h2 has room for the 8 GiB server only, h3 for 1 GiB only. The
        # small one alone would rather go to h2 (emptier); taken first it
        # would leave the big one nowhere.
        hosts = [fakes.host('h1'), fakes.host('h2', memory_mb=9216),
                 fakes.host('h3', memory_mb=4096)]
        fl, snap = fakes.build({'h1': ['big', 'small'], 'h2': ['x'],
                                'h3': ['y', 'z']}, hosts=hosts)
        resize(fl, 'big', memory_mb=8192)
        resize(fl, 'y', memory_mb=2048)
        p = self._plan(fl, snap)
        self.assertEqual([('big', 'h2'), ('small', 'h3')],
                         [(m.server_id, m.destination) for m in p.moves])
        self.assertEqual([], p.unmovable)

    @staticmethod
    def _room_fleet():
        """X (8 GiB) on h1; h2 (10 GiB) holds 4 GiB, h3 (8 GiB) 4 GiB."""
        hosts = [fakes.host('h1'), fakes.host('h2', memory_mb=10240),
                 fakes.host('h3', memory_mb=8192)]
        fl, snap = fakes.build({'h1': ['X'], 'h2': ['Y', 'w'],
                                'h3': ['v']}, hosts=hosts)
        resize(fl, 'X', memory_mb=8192)
        resize(fl, 'Y', memory_mb=2048)
        resize(fl, 'w', memory_mb=2048)
        resize(fl, 'v', memory_mb=4096)
        return fl, snap

    def test_makes_room_when_nothing_fits(self):
        # X (8 GiB) on h1 fits nowhere: h2 has 6 GiB free, h3 4 GiB. The
        # least loaded host refused for room only, h3 (0.1), is tried
        # first: moving v (4 GiB) to h2 (6 GiB free) frees 8 GiB on h3.
        # v's move is planned first, then X's, both through h3 (so the
        # executor runs them one after the other).
        fl, snap = self._room_fleet()
        p = self._plan(fl, snap)
        self.assertEqual([('v', 'h3', 'h2'), ('X', 'h1', 'h3')],
                         [(m.server_id, m.source, m.destination)
                          for m in p.moves])
        self.assertIn('makes room on h3 for X', p.moves[0].reason)
        self.assertEqual([], p.unmovable)

    def test_room_nova_does_not_see_yet_makes_the_server_wait(self):
        # The same fleet, with Nova's rules asked: like Placement, this
        # oracle still counts v on h3 (it refuses X there) until v's
        # migration is done. Only v's move is planned; X waits.
        class PlacementLike:
            def excluded(self, servers):
                return {}

            def signatures(self, servers):
                return [s.id for s in servers]

            def evaluate(self, pairs):
                return [('Placement', 'no room') if (s.id, h) == ('X', 'h3')
                        else None for s, h in pairs]

            def record_move(self, server, source, destination):
                return [destination]

        fl, snap = self._room_fleet()
        p = drain.DrainPlanner(['h1']).plan(fl, fakes.policy_set(), snap,
                                            10, oracle=PlacementLike())
        self.assertEqual([('v', 'h3', 'h2')],
                         [(m.server_id, m.source, m.destination)
                          for m in p.moves])
        self.assertEqual('X', p.waiting[0][0])
        self.assertIn('the move of v off h3', p.waiting[0][1])
        self.assertEqual([], p.unmovable)

    def test_no_room_anywhere(self):
        hosts = [fakes.host('h1'), fakes.host('h2', memory_mb=4096)]
        fl, snap = fakes.build({'h1': ['X'], 'h2': ['Y']}, hosts=hosts)
        resize(fl, 'X', memory_mb=8192)
        p = self._plan(fl, snap)
        self.assertEqual([], p.moves)
        self.assertEqual([('X', 'no host of its aggregate accepts it: '
                                'capacity 1')], p.unmovable)

    def test_budget_spent_is_said(self):
        fl, snap = fakes.build({'h1': list('abc'), 'h2': []})
        p = self._plan(fl, snap, budget=1)
        self.assertEqual(1, len(p.moves))
        self.assertEqual([], p.unmovable)
        self.assertEqual(2, len(p.deferred))
        self.assertIn('budget of 1 live migration(s) is spent',
                      p.deferred[0][1])

    def test_a_down_host_cannot_be_drained_by_live_migration(self):
        hosts = [fakes.host('h1', usable=False,
                            unusable_reason='nova-compute is down'),
                 fakes.host('h2')]
        fl, snap = fakes.build({'h1': ['a'], 'h2': []}, hosts=hosts)
        p = self._plan(fl, snap)
        self.assertEqual([], p.moves)
        self.assertIn('evacuate', p.unmovable[0][1])

    def test_a_disabled_host_is_drained(self):
        hosts = [fakes.host('h1', usable=False, disabled=True,
                            unusable_reason='nova-compute is disabled'),
                 fakes.host('h2')]
        fl, snap = fakes.build({'h1': ['a'], 'h2': []}, hosts=hosts)
        p = self._plan(fl, snap)
        self.assertEqual([('a', 'h2')], [(m.server_id, m.destination)
                                         for m in p.moves])

    def test_a_server_that_may_not_move_is_said_to_stay(self):
        fl, snap = fakes.build({'h1': ['a', 'b'], 'h2': []})
        fl.servers['b'].status = 'SHUTOFF'
        p = self._plan(fl, snap)
        self.assertEqual([('a', 'h2')], [(m.server_id, m.destination)
                                         for m in p.moves])
        self.assertEqual([('b', 'status SHUTOFF, task None; not moved')],
                         p.unmovable)
        self.assertEqual([], p.aggregates[0].freed_hosts)

    def test_missing_metrics_do_not_stop_a_drain(self):
        # h1's exporter is gone: no load for h1, no share for its server.
        fl, snap = fakes.build({'h1': ['a'], 'h2': ['b'], 'h3': []})
        for pol in snap.data.values():
            del pol.hosts['h1']
            del pol.vms['a']
        p = self._plan(fl, snap)
        # Counted as 0 it changes no load: the first host wins the tie.
        self.assertEqual([('a', 'h2')], [(m.server_id, m.destination)
                                         for m in p.moves])
        self.assertIn(('server', 'a', 'no share for policy cpu, mem; '
                                      'counted as 0 for the drain'),
                      p.exclusions)
        self.assertEqual(['h1'], p.aggregates[0].freed_hosts)

    def test_a_host_outside_the_aggregates_is_said_not_drained(self):
        # Found by the invariant tests: h0 is a fleet host in no
        # aggregate of the scope; it used to be skipped silently.
        fl, snap = fakes.build({'h0': ['a'], 'h1': [], 'h2': []})
        fl.aggregates = [fleet.Aggregate('agg0', ('h1', 'h2'), 'az1')]
        p = self._plan(fl, snap, hosts=('h0',))
        self.assertEqual([], p.moves)
        self.assertIn(('host', 'h0', 'not drained: not a host of the '
                                     'aggregates in scope'), p.exclusions)

    def test_drained_hosts_never_receive(self):
        fl, snap = fakes.build({'h1': list('ab'), 'h2': list('cdef'),
                                'h3': ['g']})
        p = self._plan(fl, snap, hosts=('h1', 'h3'))
        self.assertEqual({'a', 'b', 'g'}, {m.server_id for m in p.moves})
        self.assertEqual({'h2'}, {m.destination for m in p.moves})
        self.assertEqual(['h1', 'h3'], p.aggregates[0].freed_hosts)
