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


"""Property-based tests: every planner obeys the move rules on random fleets.

Hypothesis draws small fleets (2-8 hosts in 1-3 availability zones, some
unusable or nearly full, 0-40 servers (0-24 for drains, whose fleets need
room left), server groups of Nova's four policies in a valid starting
layout, one or two aggregates, one or two policies) with consistent
loads and shares. Each planner's plan is then
replayed move by move on bookkeeping kept here, independent of
:class:`~nova_kronos.planner.state.PlanningState`, and after every move the
rules are checked again: server groups, vCPU / RAM capacity, zone,
usability, aggregate, thresholds, the imbalance the move reports, budgets;
pack plans must not half-empty a host and drain plans never land on a
drained host.

Loads, shares and thresholds are dyadic fractions (host sizes are powers
of two, thresholds and overheads multiples of 1/64) so that sums and
scale factors are exact and a move that brings a destination exactly to
its threshold is common: the boundary of every rule is exercised, not
only its inside.

The second half checks the planning state itself: applying moves
incrementally gives the same arrays as building the state again from a
fleet and snapshot updated by hand, and every constraint of
:data:`nova_kronos.constraints.DEFAULT` allows exactly the moves its rule
allows.

Examples are derandomized (same fleets on every run) and no example
database is kept, so a failure in CI reproduces locally as is.
"""

import copy
import dataclasses

import hypothesis
from hypothesis import strategies as st
import numpy as np
import testtools

from nova_kronos import constraints
from nova_kronos import fleet
from nova_kronos import metrics
from nova_kronos import planner
from nova_kronos.planner import drain
from nova_kronos.planner import pack
from nova_kronos.planner import spread
from nova_kronos.planner import state as state_mod
from nova_kronos import policy

#: Imbalances a move reports must match the ones recomputed here this
#: closely.
IMBALANCE_TOLERANCE = 1e-9
#: Slack on capacity and threshold comparisons (values are exact on the
#: dyadic grid; this only absorbs a different but equivalent evaluation
#: order).
SLACK = 1e-12
#: Loads, shares and thresholds are multiples of 1/GRID.
GRID = 64

#: (vCPUs, MiB) of the flavors servers are drawn from.
FLAVORS = ((1, 512), (1, 2048), (2, 1024), (2, 4096), (4, 2048), (4, 8192),
           (8, 4096), (1, 6144))
#: Migration budgets (sampled, so that 0 is drawn as often as the others).
BUDGETS = (8, 15, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 0)
#: Fraction of its flavor a server uses, per policy.
USE = (0.5, 1.0, 0.25, 0.75, 0.125, 0.0)
#: Settings.max_migrated_gib values.
GIB_LIMITS = (None, None, None, None, 0.0, 2.0, 8.0, 24.0, 64.0)
#: Settings.target_imbalance values.
TARGETS = (None, None, None, 0.0, 0.02, 0.1, 0.25)
#: Which allocation of a host other servers nearly fill, if any.
NEARLY_FULL = (None, None, None, None, 'vcpus', 'memory_mb')
#: (usable, unusable_reason) of hosts.
LIVENESS = ((True, None),) * 6 + ((False, 'nova-compute is down'),
                                  (False, 'nova-compute is disabled'))
#: (status, task_state): mostly movable, some not.
STATES = ((('ACTIVE', None),) * 8
          + (('SHUTOFF', None), ('ACTIVE', 'migrating')))


def examples(n):
    """Hypothesis settings: ``n`` reproducible examples, no deadline."""
    return hypothesis.settings(
        max_examples=n, deadline=None, derandomize=True, database=None,
        print_blob=False,
        suppress_health_check=[hypothesis.HealthCheck.too_slow,
                               hypothesis.HealthCheck.data_too_large])


# -- random fleets -----------------------------------------------------------


@dataclasses.dataclass
class Case:
    """One drawn fleet with its policies, snapshot, budget and settings.

    :meth:`build` hands out fresh copies, so a planner that changed its
    inputs could neither hide it nor spoil the replay.
    """

    fleet: fleet.Fleet
    policy_set: policy.PolicySet
    snapshot: metrics.Snapshot
    budget: int
    settings: planner.Settings
    drained: tuple = ()
    quarantine: tuple = ()

    def build(self):
        return (copy.deepcopy(self.fleet), self.policy_set,
                copy.deepcopy(self.snapshot))

    def _repr_pretty_(self, printer, cycle):
        # Hypothesis prints a falsifying example with this.
        printer.text(repr(self))

    def __repr__(self):
        fl, snap = self.fleet, self.snapshot
        agg_of = {}
        for a in fl.aggregates:
            for h in a.hosts:
                agg_of[h] = agg_of[h] + ',' + a.name if h in agg_of \
                    else a.name
        lines = ['Case(']
        for h in fl.hosts.values():
            lines.append(
                '  host %s %s %s%s vcpu %g/%g (phys %g) ram %g/%g (phys %g)'
                % (h.name, h.availability_zone, agg_of.get(h.name, '-'),
                   '' if h.usable else ' UNUSABLE (%s)' % h.unusable_reason,
                   h.vcpus_used,
                   h.vcpus_capacity, h.vcpus, h.memory_mb_used,
                   h.memory_mb_capacity, h.memory_mb))
        for s in fl.servers.values():
            lines.append(
                '  server %s on %s %dvcpu %dMB %s%s%s%s' % (
                    s.id, s.host, s.vcpus, s.memory_mb, s.status,
                    '/%s' % s.task_state if s.task_state else '',
                    ' image disk=%dG' % s.flavor_disk_gb
                    if s.image_id else '',
                    ' group=%s' % s.group_id if s.group_id else ''))
        for g in fl.groups.values():
            lines.append('  group %s %s max=%s members=%s' % (
                g.id, g.policy, g.max_server_per_host, ','.join(g.members)))
        for p in self.policy_set.enabled:
            data = snap.data[p.name]
            lines.append('  policy %s %s w=%g thr=%g resource=%s' % (
                p.name, p.mode, p.weight, p.threshold, p.resource))
            lines.append('    loads ' + ' '.join(
                '%s=%g' % kv for kv in sorted(data.hosts.items())))
            lines.append('    shares ' + ' '.join(
                '%s=%g' % kv for kv in sorted(data.vms.items())))
        lines.append('  budget=%d drained=%s quarantine=%s' % (
            self.budget, list(self.drained), list(self.quarantine)))
        lines.append('  %r)' % (self.settings,))
        return '\n'.join(lines)


_POLICY_SETS = {}


def _policy_set(specs):
    """PolicySet for ``((mode, weight, threshold, resource), ...)``."""
    found = _POLICY_SETS.get(specs)
    if found is None:
        doc = {}
        for i, (mode, weight, threshold, resource) in enumerate(specs):
            doc['p%d' % i] = dict(
                mode=mode, weight=weight, threshold=threshold,
                host_query='host_p%d' % i, host_label='nodename',
                vm_query='vm_p%d' % i, vm_label='instance_id',
                **({'resource': resource} if resource else {}))
        found = _POLICY_SETS[specs] = policy.from_dict({'policies': doc})
    return found


def _fits(host, vcpus, memory_mb):
    return (host.vcpus_used + vcpus <= host.vcpus_capacity
            and host.memory_mb_used + memory_mb <= host.memory_mb_capacity)


def _share_basis(resource, server, host):
    """A server's size relative to its host, in the policy's resource."""
    if resource == 'memory_mb':
        return server.memory_mb / host.memory_mb
    return server.vcpus / host.vcpus


_STRATEGIES = {}


def pick(draw, values):
    """Draw one of ``values`` (a tuple), shrinking towards the first.

    Strategies are built once per distinct argument and reused: building
    and validating a strategy for every draw would cost more than the
    planning itself.
    """
    strategy = _STRATEGIES.get(values)
    if strategy is None:
        strategy = _STRATEGIES[values] = st.sampled_from(values)
    return draw(strategy)


def between(draw, low, high):
    """Draw an integer in [low, high]."""
    key = ('int', low, high)
    strategy = _STRATEGIES.get(key)
    if strategy is None:
        strategy = _STRATEGIES[key] = st.integers(low, high)
    return draw(strategy)


@st.composite
def cases(draw, mode='spread', drain=False, quarantine=False,
          max_servers=40, tight=False):
    """A :class:`Case`; ``mode`` is the mode most policies get.

    ``tight``: one zone, one aggregate, every host usable and RAM the
    scarce resource, so that servers often fit only once another moved
    (a drain's make-room moves).
    """
    n_hosts = between(draw, 3 if tight else 2, 8)
    n_az = 1 if tight else pick(draw, (1, 2, 1, 3))
    hosts = []
    for i in range(n_hosts):
        vcpus = pick(draw, (16, 8, 4, 32))
        memory_mb = pick(draw, (16384, 8192) if tight
                         else (32768, 16384, 8192, 65536))
        usable, why = (True, None) if tight else pick(draw, LIVENESS)
        hosts.append(fleet.Host(
            name='h%d' % i,
            availability_zone='az%d' % between(draw, 0, n_az - 1),
            vcpus=vcpus,
            vcpus_capacity=vcpus * (4.0 if tight
                                    else pick(draw, (2.0, 1.0, 4.0))),
            memory_mb=memory_mb,
            memory_mb_capacity=memory_mb * (1.0 if tight
                                            else pick(draw, (1.0, 1.5))),
            usable=usable, unusable_reason=why,
            disabled=why == 'nova-compute is disabled'))

    servers = []
    for i in range(between(draw, 0, max_servers)):
        vcpus, memory_mb = pick(draw, FLAVORS)
        first = between(draw, 0, n_hosts - 1)
        # Placement never allocated beyond capacity: first host it fits.
        for j in range(n_hosts):
            host = hosts[(first + j) % n_hosts]
            if _fits(host, vcpus, memory_mb):
                break
        else:
            continue
        host.vcpus_used += vcpus
        host.memory_mb_used += memory_mb
        status, task = pick(draw, STATES)
        image = pick(draw, (None, 'image-1'))
        servers.append(fleet.Server(
            id='s%02d' % i, name='vm-%d' % i, host=host.name, vcpus=vcpus,
            memory_mb=memory_mb, status=status, task_state=task,
            image_id=image,
            flavor_disk_gb=pick(draw, (0, 10, 40)) if image else 0))
    for host in hosts:
        # Allocations of servers outside the fleet: some hosts nearly full.
        attr = None if tight else pick(draw, NEARLY_FULL)
        if attr:
            fill = pick(draw, (0.9, 1.0, 0.5))
            used = getattr(host, attr + '_used')
            free = getattr(host, attr + '_capacity') - used
            setattr(host, attr + '_used', used + float(int(fill * free)))

    groups = _draw_groups(draw, servers)

    names = tuple(h.name for h in hosts)
    n_aggs = 1 if tight else between(draw, 1, 2)
    choices = tuple(range(n_aggs))
    if not tight and pick(draw, (False, False, False, True)):
        choices += (None,)    # some hosts outside every aggregate
    if n_aggs == 2 and pick(draw, (False, False, False, True)):
        choices += ('both',)  # overlapping aggregates
    member_of = [pick(draw, choices) for _ in names]
    aggregates = [
        fleet.Aggregate('agg%d' % a, tuple(
            h for h, m in zip(names, member_of) if m in (a, 'both')))
        for a in range(n_aggs)]

    other = 'pack' if mode == 'spread' else 'spread'
    n_pol = between(draw, 1, 2)
    w0 = 1.0 if n_pol == 1 else between(draw, 0, 8) / 8.0
    specs = tuple(
        (pick(draw, (mode, mode, mode, other)),
         w0 if i == 0 else 1.0 - w0,
         between(draw, GRID // 2, GRID) / GRID,
         pick(draw, (None, 'vcpu', 'memory_mb')))
        for i in range(n_pol))
    ps = _policy_set(specs)

    by_name = {h.name: h for h in hosts}
    snap = metrics.Snapshot()
    for p in ps.enabled:
        data = snap.data[p.name] = metrics.PolicyData()
        totals = dict.fromkeys(names, 0.0)
        for s in servers:
            share = min(1.0, _share_basis(p.resource, s, by_name[s.host])
                        * pick(draw, USE))
            data.vms[s.id] = share
            totals[s.host] += share
        for h in names:
            overhead = between(draw, 0, 8) / GRID
            data.hosts[h] = min(1.0, totals[h] + overhead)
    # A few gaps in the data: a host without a load, a server without a
    # share (each for one policy).
    if pick(draw, (False, False, False, True)):
        h = pick(draw, names)
        del snap.data[pick(draw, ps.enabled).name].hosts[h]
    server_ids = tuple(s.id for s in servers)
    if server_ids:
        for _ in range(pick(draw, (0, 0, 0, 1, 2))):
            sid = pick(draw, server_ids)
            snap.data[pick(draw, ps.enabled).name].vms.pop(sid, None)

    drained = ()
    if drain:
        drained = tuple(sorted(draw(st.sets(
            st.sampled_from(names), min_size=1,
            max_size=max(1, min(3, n_hosts - 1))))))
    pairs = ()
    if quarantine and servers:
        pairs = tuple(
            (pick(draw, server_ids), pick(draw, names + (None,)))
            for _ in range(between(draw, 0, 4)))

    settings = planner.Settings(
        aggressiveness=pick(draw, (3, 5, 4, 2, 1)),
        target_imbalance=pick(draw, TARGETS),
        migration_cost=pick(draw, (True, False)),
        max_migrated_gib=None if tight else pick(draw, GIB_LIMITS),
        shared_storage=pick(draw, (False, True)))
    return Case(
        fleet=fleet.Fleet.build(hosts, servers, groups, aggregates,
                                known_hosts=names),
        policy_set=ps, snapshot=snap,
        budget=pick(draw, (15, 8, 3) if tight else BUDGETS),
        settings=settings, drained=drained, quarantine=pairs)


def _draw_groups(draw, servers):
    """Server groups whose starting layout their policy allows."""
    groups = []
    free = {s.id: s for s in servers}
    for gi in range(between(draw, 0, 4)):
        kind = pick(draw, fleet.GROUP_POLICIES)
        limit = None
        if kind == fleet.ANTI_AFFINITY:
            limit = pick(draw, (None, 1, 2, 3))
        members, per_host = [], {}
        ids = tuple(sorted(free))
        for _ in range(between(draw, 0, 6) if ids else 0):
            sid = pick(draw, ids)
            host = free[sid].host
            if sid in members:
                continue
            if kind == fleet.AFFINITY and members and \
                    host != free[members[0]].host:
                continue
            if kind == fleet.ANTI_AFFINITY and \
                    per_host.get(host, 0) >= (limit or 1):
                continue
            per_host[host] = per_host.get(host, 0) + 1
            members.append(sid)
        for sid in members:
            del free[sid]
        groups.append(fleet.ServerGroup(
            id='g%d' % gi, name='group-%d' % gi, policy=kind,
            members=tuple(members), max_server_per_host=limit))
    return groups


# -- planners ----------------------------------------------------------------


def make_planner(kind, settings, drained=()):
    """A planner of ``kind`` ('spread', 'pack', 'drain') with ``settings``."""
    if kind == 'spread':
        return spread.SpreadPlanner(settings=settings)
    if kind == 'pack':
        return pack.PackPlanner(settings=settings)
    return drain.DrainPlanner(hosts=list(drained), settings=settings)


def scale(cap_src, cap_dst):
    """The move model's k: capacity ratio, 1 when either is unknown."""
    if cap_src > 0 and cap_dst > 0:
        return cap_src / cap_dst
    return 1.0


def group_rule_allows(kind, limit, on_source, on_destination):
    """Nova's group policies for one move; counts include the server.

    :param on_source: members on the source host, the server included.
    :param on_destination: members on the destination before the move.
    """
    if kind == fleet.AFFINITY:
        return False
    if kind == fleet.ANTI_AFFINITY:
        return on_destination < (limit or 1)
    if kind == fleet.SOFT_ANTI_AFFINITY:
        return on_destination < on_source
    return on_destination >= on_source


def describe(plan):
    return '\n'.join(
        '  %d. %s %s->%s [%s] imbalance %.12g->%.12g gib=%g' % (
            i, m.server_id, m.source, m.destination, m.aggregate,
            m.imbalance_before, m.imbalance_after, m.gib)
        for i, m in enumerate(plan.moves)) or '  (no move)'


class Replay:
    """The fleet as a plan's moves change it, kept with plain dicts.

    Nothing here reads a :class:`PlanningState`: the starting point is the
    case's fleet and snapshot, and each move is applied with the
    documented move model (``L[p,s] -= a``, ``L[p,d] += a * k``, the share
    becomes ``a * k``).

    :param mode: the mode whose policies make the imbalance a move
        reports ('spread' for the spread and drain planners, 'pack' for
        the pack planner).
    :param fallback: with no policy of ``mode`` (weights summing to 0),
        weigh every enabled policy instead (the drain planner's documented
        choice).
    """

    def __init__(self, case, mode, fallback=False):
        self.case = case
        fl, snap = case.fleet, case.snapshot
        self.fleet = fl
        self.policies = case.policy_set.enabled
        self.drained = set(case.drained)
        self.where = {s.id: s.host for s in fl.servers.values()}
        self.vcpus_used = {h.name: h.vcpus_used for h in fl.hosts.values()}
        self.memory_used = {h.name: h.memory_mb_used
                            for h in fl.hosts.values()}
        self.aggregates = {a.name: a for a in fl.aggregates}
        scope = {h for a in fl.aggregates for h in a.hosts}
        # Hosts with a load for every policy (a drained host without one
        # counts as load 0); the imbalance leaves drained hosts out.
        self.with_data = {
            h for h in scope
            if h in self.drained or all(h in snap.data[p.name].hosts
                                        for p in self.policies)}
        self.loads = {p.name: {h: snap.data[p.name].hosts.get(h, 0.0)
                               for h in self.with_data}
                      for p in self.policies}
        self.shares = {p.name: dict(snap.data[p.name].vms)
                       for p in self.policies}
        for s in fl.servers.values():
            if s.host in self.drained:
                for p in self.policies:
                    self.shares[p.name].setdefault(s.id, 0.0)
        w = np.array([p.weight if p.mode == mode else 0.0
                      for p in self.policies])
        if fallback and not w.sum() > 0:
            w = np.array([p.weight for p in self.policies])
        self.weights = w / w.sum() if w.sum() > 0 else None
        self.moved = set()

    def members_on(self, group, host):
        return sum(1 for m in group.members if self.where.get(m) == host)

    def imbalance(self, aggregate):
        hosts = sorted(h for h in aggregate.hosts if h in self.with_data
                       and h not in self.drained)
        if len(hosts) < 2:
            return 0.0
        return float(sum(
            w * np.std([self.loads[p.name][h] for h in hosts])
            for w, p in zip(self.weights, self.policies)))

    def k(self, policy_, source, destination):
        hosts = self.fleet.hosts
        return scale(state_mod.host_capacity(hosts[source], policy_.resource),
                     state_mod.host_capacity(hosts[destination],
                                             policy_.resource))

    def apply(self, server, destination):
        """The move model, on the dicts; returns nothing."""
        source = self.where[server.id]
        for p in self.policies:
            share = self.shares[p.name][server.id]
            added = share * self.k(p, source, destination)
            self.loads[p.name][source] -= share
            self.loads[p.name][destination] += added
            self.shares[p.name][server.id] = added
        self.vcpus_used[source] -= server.vcpus
        self.vcpus_used[destination] += server.vcpus
        self.memory_used[source] -= server.memory_mb
        self.memory_used[destination] += server.memory_mb
        self.where[server.id] = destination

    def check(self, i, move):
        """Raise AssertionError unless ``move`` (the i-th) obeys the rules."""
        fl = self.fleet
        what = 'move %d (%s %s->%s)' % (i, move.server_id, move.source,
                                        move.destination)

        def require(ok, why, *args):
            if not ok:
                raise AssertionError('%s: %s' % (what, why % args))

        server = fl.servers.get(move.server_id)
        require(server is not None, 'unknown server')
        require(move.server_id not in self.moved, 'server moved twice')
        require(server.migratable, 'server is %s/%s', server.status,
                server.task_state)
        require(all(server.id in self.shares[p.name]
                    for p in self.policies),
                'server has no share for some policy')
        require(self.where[server.id] == move.source,
                'server is on %s, not on the source',
                self.where[server.id])
        require(move.destination != move.source, 'destination is source')
        require(move.destination in fl.hosts, 'unknown destination')
        src, dst = fl.hosts[move.source], fl.hosts[move.destination]
        require(dst.usable, 'destination unusable (%s)', dst.unusable_reason)
        require(src.availability_zone == dst.availability_zone,
                'zone %s -> %s', src.availability_zone,
                dst.availability_zone)
        agg = self.aggregates.get(move.aggregate)
        require(agg is not None, 'unknown aggregate %r', move.aggregate)
        require(move.source in agg.hosts and move.destination in agg.hosts,
                'source or destination outside aggregate %s %s',
                agg.name, agg.hosts)
        require(move.source in self.with_data
                and move.destination in self.with_data,
                'source or destination has no load for some policy')
        require(move.destination not in self.drained,
                'destination is drained')
        if server.group_id:
            group = fl.groups[server.group_id]
            on_src = self.members_on(group, move.source)
            on_dst = self.members_on(group, move.destination)
            require(group_rule_allows(group.policy, group.max_server_per_host,
                                      on_src, on_dst),
                    '%s group %s (max %s): %d members on source, %d on '
                    'destination', group.policy, group.id,
                    group.max_server_per_host, on_src, on_dst)
        if self.weights is not None:
            mine = self.imbalance(agg)
            require(abs(move.imbalance_before - mine) <= IMBALANCE_TOLERANCE,
                    'imbalance_before %.17g, recomputed %.17g (diff %.3g)',
                    move.imbalance_before, mine,
                    move.imbalance_before - mine)

        self.apply(server, move.destination)
        self.moved.add(server.id)

        d = move.destination
        require(self.vcpus_used[d] <= dst.vcpus_capacity + SLACK,
                'destination vCPUs %g > capacity %g', self.vcpus_used[d],
                dst.vcpus_capacity)
        require(self.memory_used[d] <= dst.memory_mb_capacity + SLACK,
                'destination RAM %g MiB > capacity %g', self.memory_used[d],
                dst.memory_mb_capacity)
        for p in self.policies:
            require(self.loads[p.name][d] <= p.threshold + SLACK,
                    'policy %s: destination load %.17g > threshold %g',
                    p.name, self.loads[p.name][d], p.threshold)
        if self.weights is not None:
            mine = self.imbalance(agg)
            require(abs(move.imbalance_after - mine) <= IMBALANCE_TOLERANCE,
                    'imbalance_after %.17g, recomputed %.17g (diff %.3g)',
                    move.imbalance_after, mine, move.imbalance_after - mine)


class PlanInvariantsMixin:
    """Runs a planner on a case and checks its plan move by move."""

    def run_and_check(self, kind, mode, case, fallback=False):
        fl, ps, snap = case.build()
        plan = make_planner(kind, case.settings, case.drained).plan(
            fl, ps, snap, case.budget)
        # The inputs are left as they were.
        self.assertEqual(case.fleet, fl)
        self.assertEqual(case.snapshot, snap)

        replay = Replay(case, mode, fallback)
        try:
            for i, move in enumerate(plan.moves):
                replay.check(i, move)
            self.check_plan(case, plan, replay)
        except AssertionError as e:
            raise AssertionError('%s\nplan:\n%s' % (e, describe(plan)))
        return plan, replay

    def check_plan(self, case, plan, replay):
        if len(plan.moves) > case.budget:
            raise AssertionError('%d moves for a budget of %d'
                                 % (len(plan.moves), case.budget))
        limit = case.settings.max_migrated_gib
        for m in plan.moves:
            gib, block = case.settings.move_gib(
                case.fleet.servers[m.server_id])
            if abs(m.gib - gib) > 1e-9 or m.block_migration != block:
                raise AssertionError(
                    '%s: gib %g block %s, expected %g %s'
                    % (m.server_id, m.gib, m.block_migration, gib, block))
        if limit is not None and plan.migrated_gib > limit + 1e-9:
            raise AssertionError('%g GiB copied, limit %g'
                                 % (plan.migrated_gib, limit))


class TestSpreadInvariants(PlanInvariantsMixin, testtools.TestCase):

    @examples(1200)
    @hypothesis.given(case=cases(mode='spread'))
    def test_spread_plan_obeys_every_rule(self, case):
        self.run_and_check('spread', 'spread', case)


class TestPackInvariants(PlanInvariantsMixin, testtools.TestCase):

    @examples(1000)
    @hypothesis.given(case=cases(mode='pack'))
    def test_pack_plan_obeys_every_rule(self, case):
        plan, replay = self.run_and_check('pack', 'pack', case)
        left = {}
        for sid, host in replay.where.items():
            left.setdefault(host, []).append(sid)
        for host in sorted({m.source for m in plan.moves}):
            self.assertEqual(
                [], left.get(host, []),
                'host %s half-emptied: a move source still holding servers'
                '\nplan:\n%s' % (host, describe(plan)))
        for report in plan.aggregates:
            for host in report.freed_hosts:
                self.assertEqual(
                    [], left.get(host, []),
                    'freed host %s still holds servers\nplan:\n%s'
                    % (host, describe(plan)))


class TestDrainInvariants(PlanInvariantsMixin, testtools.TestCase):

    @examples(800)
    @hypothesis.given(case=cases(mode='spread', drain=True, max_servers=24))
    def test_drain_plan_obeys_every_rule(self, case):
        self.check_drain(case)

    @examples(400)
    @hypothesis.given(case=cases(mode='spread', drain=True, max_servers=18,
                                 tight=True))
    def test_tight_drain_plan_obeys_every_rule(self, case):
        self.check_drain(case)

    def check_drain(self, case):
        plan, replay = self.run_and_check('drain', 'spread', case,
                                          fallback=True)
        # Servers left behind: unmovable, deferred (a budget ran out) or
        # waiting (for room a planned move makes).
        behind = {}
        for attr in ('unmovable', 'deferred', 'waiting'):
            for sid, _ in getattr(plan, attr, ()):
                behind.setdefault(sid, []).append(attr)
        for sid, lists in sorted(behind.items()):
            self.assertIn(sid, case.fleet.servers)
            self.assertIn(case.fleet.servers[sid].host, case.drained)
            self.assertEqual(1, len(lists), '%s in %s' % (sid, lists))
            self.assertNotIn(sid, replay.moved, '%s both moved and in %s'
                             '\nplan:\n%s' % (sid, lists, describe(plan)))
        left = set(replay.where.values())
        for report in plan.aggregates:
            for host in report.freed_hosts:
                self.assertIn(host, case.drained)
                self.assertNotIn(host, left, 'freed host %s still holds '
                                 'servers\nplan:\n%s' % (host, describe(plan)))
        # Every server left on a drained host is accounted for: left
        # behind as above, or excluded (itself or its host) with a reason.
        # Only hosts of the aggregates in scope: read_fleet refuses to
        # drain any other.
        excluded = {(kind, name) for kind, name, _ in plan.exclusions}
        in_scope = {h for a in case.fleet.aggregates for h in a.hosts}
        for s in case.fleet.servers.values():
            if s.host in case.drained and s.host in in_scope and \
                    s.id not in replay.moved:
                self.assertTrue(
                    s.id in behind or ('server', s.id) in excluded
                    or ('host', s.host) in excluded,
                    'server %s left on drained host %s with no word about '
                    'it\nplan:\n%s\nleft behind: %s\nexclusions: %s' % (
                        s.id, s.host, describe(plan), behind,
                        plan.exclusions))


# -- the planning state ------------------------------------------------------


class Walk:
    """A PlanningState and the same fleet kept by hand, moved together.

    The hand-kept side changes the fleet itself (``server.host``, the
    hosts' allocations) and the snapshot's loads and shares by the move
    model, so a :class:`PlanningState` built from it afresh must equal
    the one :meth:`PlanningState.apply` kept up to date.
    """

    def __init__(self, case):
        fl, ps, snap = case.build()
        self.policies = ps.enabled
        complete = sorted(
            h for h in fl.hosts
            if all(h in snap.data[p.name].hosts for p in self.policies))
        self.hosts = complete
        self.candidates = sorted(
            s.id for s in fl.servers.values() if s.host in complete
            and all(s.id in snap.data[p.name].vms for p in self.policies))
        self.quarantine = case.quarantine
        self.fleet, self.snapshot = fl, snap
        self.state = self.rebuild()
        # The hand-kept copy the state is checked against.
        self.fleet, self.snapshot = copy.deepcopy(fl), copy.deepcopy(snap)

    def rebuild(self):
        return state_mod.PlanningState(
            self.fleet, self.policies,
            {p.name: self.snapshot.data[p.name].hosts
             for p in self.policies},
            {p.name: self.snapshot.data[p.name].vms for p in self.policies},
            self.hosts, self.candidates, quarantine=self.quarantine)

    def allowed_pairs(self):
        """(v, h) pairs every DEFAULT constraint allows, v off its host."""
        state = self.state
        v_idx = np.arange(len(state.servers))
        h_idx = np.arange(len(state.host_names))
        ok = state.src[:, None] != h_idx[None, :]
        for _, check in constraints.DEFAULT:
            ok &= check(state, v_idx, h_idx)
        return np.argwhere(ok)

    def move(self, v, h):
        """Apply to the state and, by hand, to the fleet and snapshot."""
        sid = self.candidates[v]
        server = self.fleet.servers[sid]
        source = self.fleet.hosts[server.host]
        dest = self.fleet.hosts[self.hosts[h]]
        for p in self.policies:
            data = self.snapshot.data[p.name]
            share = data.vms[sid]
            added = share * scale(
                state_mod.host_capacity(source, p.resource),
                state_mod.host_capacity(dest, p.resource))
            data.hosts[source.name] -= share
            data.hosts[dest.name] += added
            data.vms[sid] = added
        source.vcpus_used -= server.vcpus
        source.memory_mb_used -= server.memory_mb
        dest.vcpus_used += server.vcpus
        dest.memory_mb_used += server.memory_mb
        server.host = dest.name
        self.state.apply(v, h)

    def expected_masks(self):
        """Each DEFAULT constraint's rule, from the hand-kept copy.

        :returns: dict name -> bool array [V, H]; only pairs of a server
            and another host than its own are meaningful.
        """
        fl, snap = self.fleet, self.snapshot
        servers = [fl.servers[s] for s in self.candidates]
        hosts = [fl.hosts[h] for h in self.hosts]
        where = {s.id: s.host for s in fl.servers.values()}
        blocked = set(self.quarantine)
        shape = (len(servers), len(hosts))
        masks = {name: np.zeros(shape, dtype=bool)
                 for name, _ in constraints.DEFAULT}
        for v, s in enumerate(servers):
            src = fl.hosts[s.host]
            group = fl.groups.get(s.group_id) if s.group_id else None
            for h, dst in enumerate(hosts):
                masks['host-usable'][v, h] = dst.usable
                masks['availability-zone'][v, h] = (
                    src.availability_zone == dst.availability_zone)
                masks['capacity'][v, h] = (
                    s.vcpus <= dst.vcpus_capacity - dst.vcpus_used
                    and s.memory_mb <= dst.memory_mb_capacity
                    - dst.memory_mb_used)
                masks['threshold'][v, h] = all(
                    snap.data[p.name].hosts[dst.name]
                    + snap.data[p.name].vms[s.id] * scale(
                        state_mod.host_capacity(src, p.resource),
                        state_mod.host_capacity(dst, p.resource))
                    <= p.threshold for p in self.policies)
                masks['server-group'][v, h] = group is None or \
                    group_rule_allows(
                        group.policy, group.max_server_per_host,
                        sum(where.get(m) == src.name for m in group.members),
                        sum(where.get(m) == dst.name for m in group.members))
                masks['quarantine'][v, h] = not (
                    (s.id, None) in blocked or (s.id, dst.name) in blocked)
        return masks


#: PlanningState arrays compared after every move (floats with a
#: tolerance, the others exactly).
FLOAT_ARRAYS = ('loads', 'shares', 'capacity', 'thresholds', 'weights',
                'vcpus', 'memory_mb', 'free_vcpus', 'free_memory_mb')
EXACT_ARRAYS = ('src', 'usable', 'az', 'group', 'group_policy', 'group_max',
                'group_counts', 'quarantine_all', 'quarantine_v',
                'quarantine_h')


class TestPlanningStateInvariants(testtools.TestCase):

    def walk(self, case, data):
        """Yield a Walk after 0, 1, ... random allowed moves."""
        walk = Walk(case)
        yield walk
        for _ in range(data.draw(st.integers(0, 12), label='moves')):
            pairs = walk.allowed_pairs()
            if not len(pairs):
                return
            v, h = pairs[data.draw(st.integers(0, len(pairs) - 1),
                                   label='pair')]
            walk.move(int(v), int(h))
            yield walk

    @examples(500)
    @hypothesis.given(case=cases(), data=st.data())
    def test_incremental_state_equals_rebuild(self, case, data):
        for step, walk in enumerate(self.walk(case, data)):
            got, want = walk.state, walk.rebuild()
            for name in FLOAT_ARRAYS:
                np.testing.assert_allclose(
                    getattr(got, name), getattr(want, name), rtol=0,
                    atol=1e-9, err_msg='%s after %d moves' % (name, step))
            for name in EXACT_ARRAYS:
                np.testing.assert_array_equal(
                    getattr(got, name), getattr(want, name),
                    err_msg='%s after %d moves' % (name, step))

    @examples(500)
    @hypothesis.given(case=cases(quarantine=True), data=st.data())
    def test_constraints_allow_exactly_their_rule(self, case, data):
        for step, walk in enumerate(self.walk(case, data)):
            state = walk.state
            v_idx = np.arange(len(state.servers))
            h_idx = np.arange(len(state.host_names))
            off_host = state.src[:, None] != h_idx[None, :]
            expected = walk.expected_masks()
            for name, check in constraints.DEFAULT:
                got = check(state, v_idx, h_idx)
                wrong = np.argwhere(off_host & (got != expected[name]))
                if len(wrong):
                    v, h = wrong[0]
                    self.fail('constraint %s says %s for %s -> %s after %d '
                              'moves; its rule says %s' % (
                                  name, bool(got[v, h]),
                                  walk.candidates[v], walk.hosts[h], step,
                                  bool(expected[name][v, h])))
