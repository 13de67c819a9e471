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

"""The planner with a feasibility oracle (Nova's rules), faked here."""

import collections
import types

import testtools

from nova_kronos.cloud import nova_rules
from nova_kronos import fleet
from nova_kronos import planner
from nova_kronos.planner import spread
from tests.unit import fakes


class RuleOracle:
    """Accepts a server on a host iff its flavor is allowed there.

    ``allowed``: flavor -> set of hosts (flavors not listed: anywhere).
    ``room``: host -> how many more servers of a flavor in ``counted``
    the host takes (a stand-in for NUMA/PCI room consumed by moves).
    """

    def __init__(self, allowed=None, room=None, counted=(),
                 excluded=None):
        self.allowed = allowed or {}
        self.room = dict(room or {})
        self.counted = set(counted)
        self._excluded = excluded or {}
        self.asked = []
        self.moves = []

    def excluded(self, servers):
        return {s.id: self._excluded[s.id] for s in servers
                if s.id in self._excluded}

    def signatures(self, servers):
        return [s.flavor_name for s in servers]

    def evaluate(self, pairs):
        out = []
        for server, host in pairs:
            self.asked.append((server.flavor_name, host))
            hosts = self.allowed.get(server.flavor_name)
            if hosts is not None and host not in hosts:
                out.append(('AggregateInstanceExtraSpecsFilter',
                            'flavor %s not allowed' % server.flavor_name))
            elif (server.flavor_name in self.counted
                  and self.room.get(host, 1) <= 0):
                out.append(('NUMATopologyFilter', 'no room'))
            else:
                out.append(None)
        return out

    def record_move(self, server, source, destination):
        self.moves.append((server.id, source, destination))
        if server.flavor_name in self.counted and destination in self.room:
            self.room[destination] -= 1
            return [destination]
        return []


def build(layout, flavors, **kw):
    fl, snap = fakes.build(layout, **kw)
    for sid, flavor in flavors.items():
        fl.servers[sid].flavor_name = flavor
    return fl, snap


def plan(fl, snap, oracle, budget=10):
    return spread.SpreadPlanner(planner.Settings(
        aggressiveness=5, target_imbalance=0.0, migration_cost=False)).plan(
        fl, fakes.policy_set(), snap, budget, oracle=oracle)


class TestFeasibility(testtools.TestCase):

    # h1 is hot (6 servers); h3 is the coldest host, h2 the next.
    LAYOUT = {'h1': list('abcdef'), 'h2': ['g'], 'h3': []}

    def test_every_move_is_one_the_oracle_accepts(self):
        # All of h1's servers are 'ssd', allowed on h1 and h2 only: without
        # the oracle the coldest host h3 would be chosen first.
        fl, snap = build(self.LAYOUT, dict.fromkeys('abcdefg', 'ssd'))
        without = plan(fl, snap, None)
        self.assertIn('h3', {m.destination for m in without.moves})
        oracle = RuleOracle({'ssd': {'h1', 'h2'}})
        p = plan(fl, snap, oracle)
        self.assertTrue(p.moves)
        self.assertEqual({'h2'}, {m.destination for m in p.moves})
        # 6 servers on h1 (0.6), 1 on h2 (0.1): moving 2 or 3 evens h1/h2
        # out as far as h2 can take them; loads 0.4 / 0.3 after 2 moves
        # and 0.3 / 0.4 after 3: the greedy stops at 2 (the third gains 0).
        self.assertEqual(2, len(p.moves))
        # Rejections of the last step: the four unmoved servers of h1 and
        # g on h2, each refused on h3 (moved servers are not candidates).
        self.assertEqual(
            {'AggregateInstanceExtraSpecsFilter': 5},
            p.aggregates[0].rejections)

    def test_verdicts_are_shared_by_signature_and_asked_once(self):
        fl, snap = build(self.LAYOUT, dict.fromkeys('abcdefg', 'ssd'))
        oracle = RuleOracle({'ssd': {'h1', 'h2'}})
        p = plan(fl, snap, oracle)
        self.assertEqual(2, len(p.moves))
        counts = collections.Counter(oracle.asked)
        # One signature ('ssd') x at most three hosts, each pair asked once
        # although seven servers share it and three planning steps ran.
        self.assertLessEqual(set(counts), {('ssd', 'h1'), ('ssd', 'h2'),
                                           ('ssd', 'h3')})
        self.assertEqual({1}, set(counts.values()))
        self.assertIn(('ssd', 'h3'), counts)
        self.assertEqual(len(oracle.asked), p.oracle_queries)

    def test_consumed_room_is_asked_again_after_each_move(self):
        # h3 takes only one more 'big' server (NUMA room): the first move
        # goes there, the second must not, although h3 is still coldest.
        fl, snap = build({'h1': list('abcdef'), 'h2': ['g', 'h'], 'h3': []},
                         dict.fromkeys('abcdef', 'big'))
        oracle = RuleOracle(room={'h3': 1}, counted={'big'})
        p = plan(fl, snap, oracle)
        big = [m.destination for m in p.moves if m.server_id in 'abcdef']
        self.assertEqual('h3', big[0])
        self.assertEqual(1, big.count('h3'), p.moves)
        self.assertGreaterEqual(len(big), 2)
        self.assertEqual({'h2'}, set(big[1:]))
        # Each move was reported to the oracle, and h3 asked about again
        # after the first one consumed its room.
        self.assertEqual(('h1', 'h3'), oracle.moves[0][1:])
        self.assertEqual(len(p.moves), len(oracle.moves))
        self.assertEqual(2, oracle.asked.count(('big', 'h3')))
        self.assertIn('NUMATopologyFilter', p.aggregates[0].rejections)

    def test_servers_the_oracle_cannot_evaluate_are_left_out(self):
        fl, snap = build(self.LAYOUT, {})
        oracle = RuleOracle(excluded={
            s: 'dedicated CPUs: not evaluable without database access'
            for s in 'abcdefg'})
        p = plan(fl, snap, oracle)
        self.assertEqual([], p.moves)
        self.assertIn(('server', 'a', 'not moved: dedicated CPUs: not '
                       'evaluable without database access'), p.exclusions)
        self.assertEqual([], oracle.asked)

    def test_server_refused_everywhere_says_why(self):
        # 'a' may only live on h1; the others move freely.
        fl, snap = build(self.LAYOUT, {'a': 'pinned'})
        oracle = RuleOracle({'pinned': {'h1'}})
        p = plan(fl, snap, oracle, budget=6)
        self.assertNotIn('a', {m.server_id for m in p.moves})
        reasons = [r for kind, name, r in p.exclusions if name == 'a']
        self.assertEqual(1, len(reasons), p.exclusions)
        self.assertIn('no other host of aggregate agg1 accepts it', reasons[0])
        self.assertIn('h2,h3 refused by AggregateInstanceExtraSpecsFilter',
                      reasons[0])

    def test_no_oracle_changes_nothing(self):
        fl, snap = build(self.LAYOUT, {})
        p = plan(fl, snap, None)
        self.assertEqual(0, p.oracle_queries)
        self.assertNotIn('AggregateInstanceExtraSpecsFilter',
                         p.aggregates[0].rejections)


class RoomOracle(nova_rules._Oracle):
    """The shared oracle steps with one fixed Placement answer per host.

    Every host offers ``CUSTOM_MAGIC`` on a child provider with capacity
    4 and 2 used, and a server needs 1: two more fit, as Placement says.
    """

    mode = 'test'

    def __init__(self):
        super().__init__(fleet=None, filters=[], handler=None)

    def _spec_for(self, server):
        return server

    def signatures(self, servers):
        for s in servers:
            self._specs.setdefault('magic', s)
            self._server_sig[s.id] = 'magic'
        return ['magic'] * len(servers)

    def _spec_at(self, sig, host):
        return self._specs[sig]

    def _allocation_candidates(self, spec, host):
        child = host + '-child'
        alloc = {'allocations': {child: {'resources': {'CUSTOM_MAGIC': 1}},
                                 host: {'resources': {'VCPU': 1}}}}
        summaries = {child: {'resources': {'CUSTOM_MAGIC': {
            'capacity': 4, 'used': 2}}},
            host: {'resources': {'VCPU': {'capacity': 64, 'used': 0}}}}
        return [alloc], summaries

    def _host_state(self, host):
        return types.SimpleNamespace(allocation_candidates=None)

    def _consume(self, spec, host, alloc):
        pass


class TestPlannedPlacementUsage(testtools.TestCase):

    def test_planned_moves_use_up_provider_room(self):
        oracle = RoomOracle()
        servers = [fleet.Server(id='s%d' % i, name='s%d' % i, host='h1',
                                vcpus=1, memory_mb=512) for i in range(3)]
        oracle.signatures(servers)
        for s in servers[:2]:
            self.assertEqual([None], oracle.evaluate([(s, 'h2')]))
            self.assertEqual(['h2'], oracle.record_move(s, 'h1', 'h2'))
        # capacity 4 - used 2 - planned 2 leaves nothing for the third.
        verdict = oracle.evaluate([(servers[2], 'h2')])[0]
        self.assertEqual('Placement', verdict[0])
        self.assertIn('no room left', verdict[1])
        # Another host's providers are untouched.
        self.assertEqual([None], oracle.evaluate([(servers[2], 'h3')]))
