#!/usr/bin/env python3
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

"""Benchmark the spread planner with a feasibility oracle (simulated cost).

Usage: python tools/benchmark_oracle.py [--quick] [--pair-cost-ms 5]
       [--moves 50] [--repeat 3] [--case HOSTSxSERVERSxFLAVORS ...]
       [--profile]

Fleets are those of tools/benchmark_planner.py (70% of the servers crowd
the first half of the hosts), plus flavors: every server gets one, and a
share of the flavors (``--restricted``, default 30%) is allowed only on a
random share of the hosts (``--restricted-hosts``, default 25%), as
isolation aggregates or required traits would do. Servers only sit on
hosts their flavor is allowed on.

The fake oracle's request signature is the flavor name; it refuses a
restricted flavor outside its hosts. It does not sleep: every (signature,
host) pair it is asked about adds ``--pair-cost-ms`` of *simulated* time
(one Placement allocation-candidates GET with ``in_tree`` plus the host
filters, in a real cloud), and the planner's own CPU time is measured
separately. Like the scheduler oracle, a planned move invalidates the
verdicts for its destination, which are asked again when needed.

For every fleet, 50 moves are planned without and with the oracle.
"""

import argparse
import collections
import cProfile
import io
import pstats
import random
import time

import prettytable

from nova_kronos import planner as planner_mod
from nova_kronos.planner import spread

try:
    from tools import benchmark_planner
except ImportError:     # run as a script: tools/ is sys.path[0]
    import benchmark_planner

FULL_CASES = ((200, 20000, 5), (200, 20000, 20), (200, 20000, 80),
              (1000, 100000, 20), (1000, 100000, 50))
QUICK_CASES = ((50, 2000, 5), (50, 2000, 20), (200, 8000, 20))
RULE = 'AggregateInstanceExtraSpecsFilter'


def make(n_hosts, n_servers, n_flavors, restricted=0.3,
         restricted_hosts=0.25, n_groups=200, seed=1):
    """A benchmark_planner fleet whose servers have flavors.

    :returns: ``(fleet, snapshot, allowed)``, ``allowed`` mapping each
        restricted flavor name to the frozenset of hosts it may run on.
    """
    fl, snap = benchmark_planner.make(n_hosts, n_servers, n_groups,
                                      seed=seed)
    rng = random.Random(seed + 1)
    flavors = ['flavor%03d' % i for i in range(n_flavors)]
    hosts = sorted(fl.hosts)
    n_restricted = int(round(restricted * n_flavors))
    n_allowed = max(1, int(round(restricted_hosts * n_hosts)))
    allowed = {f: frozenset(rng.sample(hosts, n_allowed))
               for f in rng.sample(flavors, n_restricted)}
    per_host = {h: [f for f in flavors
                    if f not in allowed or h in allowed[f]]
                for h in hosts}
    for sid in sorted(fl.servers):
        server = fl.servers[sid]
        server.flavor_name = rng.choice(per_host[server.host])
    return fl, snap, allowed


class FakeOracle:
    """Feasibility oracle with a cost model instead of Nova.

    :param allowed: restricted flavor name -> hosts it is allowed on.
    :param pair_cost: simulated seconds per (signature, host) pair asked.
    """

    def __init__(self, allowed, pair_cost):
        self.allowed = allowed
        self.pair_cost = pair_cost
        self.pairs = 0              # pairs evaluated (with re-asks)
        self.calls = 0              # evaluate() calls (batches)
        self.asked = collections.Counter()   # (signature, host) -> times
        self.signed = 0             # servers whose signature was asked
        self.moves = 0
        self.own_time = 0.0         # real time spent in this fake

    @property
    def simulated(self):
        """Simulated seconds Nova/Placement would have spent."""
        return self.pairs * self.pair_cost

    def excluded(self, servers):
        return {}

    def signatures(self, servers):
        t = time.perf_counter()
        self.signed += len(servers)
        out = [s.flavor_name for s in servers]
        self.own_time += time.perf_counter() - t
        return out

    def evaluate(self, pairs):
        t = time.perf_counter()
        self.calls += 1
        self.pairs += len(pairs)
        out = []
        for server, host in pairs:
            sig = server.flavor_name
            self.asked[(sig, host)] += 1
            hosts = self.allowed.get(sig)
            if hosts is None or host in hosts:
                out.append(None)
            else:
                out.append((RULE, 'flavor %s is not allowed on %s'
                            % (sig, host)))
        self.own_time += time.perf_counter() - t
        return out

    def record_move(self, server, source, destination):
        self.moves += 1
        return [destination]


def run_plan(case, moves, with_oracle, pair_cost, args, profile=False):
    """Build a fresh fleet and plan; return (plan, wall, cpu, oracle)."""
    n_hosts, n_servers, n_flavors = case
    fl, snap, allowed = make(n_hosts, n_servers, n_flavors,
                             restricted=args.restricted,
                             restricted_hosts=args.restricted_hosts,
                             n_groups=args.groups, seed=args.seed)
    oracle = FakeOracle(allowed, pair_cost) if with_oracle else None
    planner = spread.SpreadPlanner(
        planner_mod.Settings(aggressiveness=args.aggressiveness,
                             target_imbalance=0.0, migration_cost=False),
        prune_hosts=args.prune_hosts)
    prof = cProfile.Profile() if profile else None
    c0, t0 = time.process_time(), time.perf_counter()
    if prof:
        prof.enable()
    plan = planner.plan(fl, benchmark_planner.POLICIES, snap, moves,
                        oracle=oracle)
    if prof:
        prof.disable()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if prof:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats('tottime').print_stats(15)
        print('--- cProfile, %dh/%ds/%df, oracle=%s ---' % (
            n_hosts, n_servers, n_flavors, with_oracle))
        print(out.getvalue())
    return plan, wall, cpu, oracle, fl, allowed


def refused(plan, fl, allowed):
    """Moves of ``plan`` the oracle would refuse."""
    n = 0
    for m in plan.moves:
        hosts = allowed.get(fl.servers[m.server_id].flavor_name)
        if hosts is not None and m.destination not in hosts:
            n += 1
    return n


def bench(case, args):
    pair_cost = args.pair_cost_ms / 1000.0
    best = {}
    for with_oracle in (False, True):
        for r in range(args.repeat):
            res = run_plan(case, args.moves, with_oracle, pair_cost, args,
                           profile=args.profile and r == 0)
            key = with_oracle
            if key not in best or res[2] < best[key][2]:
                best[key] = res
    plan0, wall0, cpu0, _, fl0, allowed0 = best[False]
    plan1, wall1, cpu1, oracle, fl1, _ = best[True]
    sigs = len({s.flavor_name for s in fl1.servers.values()})
    n_hosts = case[0]
    moves1 = max(1, len(plan1.moves))
    assert plan1.oracle_queries == oracle.pairs, (
        plan1.oracle_queries, oracle.pairs)
    assert refused(plan1, fl1, oracle.allowed) == 0
    return {
        'case': case, 'sigs': sigs,
        'restricted': len(oracle.allowed),
        'moves0': len(plan0.moves), 'moves1': len(plan1.moves),
        'wall0': wall0, 'cpu0': cpu0, 'wall1': wall1, 'cpu1': cpu1,
        'fake': oracle.own_time,
        'pairs': plan1.oracle_queries, 'distinct': len(oracle.asked),
        'reasked': plan1.oracle_queries - len(oracle.asked),
        'max_asked': max(oracle.asked.values() or [0]),
        'calls': oracle.calls, 'signed': oracle.signed,
        'full': sigs * n_hosts,
        'sim': oracle.simulated, 'sim_move': oracle.simulated / moves1,
        'cpu_move': cpu1 / moves1,
        'imb0': plan0.aggregates[0].imbalance_after,
        'imb1': plan1.aggregates[0].imbalance_after,
        'imb_before': plan1.aggregates[0].imbalance_before,
        'refused0': refused(plan0, fl0, allowed0),
    }


def label(case):
    return '%dh/%ds/%df' % case


def ratio_line(what, a, b):
    fa, fb = a['pairs'], b['pairs']
    return ('  %s: %s -> %s: pairs asked %d -> %d (x%.2f), '
            'simulated %.1f s -> %.1f s' % (
                what, label(a['case']), label(b['case']), fa, fb,
                fb / max(1, fa), a['sim'], b['sim']))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--quick', action='store_true',
                    help='small fleets, for a smoke run')
    ap.add_argument('--pair-cost-ms', type=float, default=5.0,
                    help='simulated cost of one (signature, host) verdict')
    ap.add_argument('--moves', type=int, default=50)
    ap.add_argument('--repeat', type=int, default=3,
                    help='plans per fleet and mode; the fastest is kept')
    ap.add_argument('--case', action='append', default=[],
                    metavar='HOSTSxSERVERSxFLAVORS',
                    help='fleet to run instead of the default set '
                         '(repeatable), e.g. 200x20000x20')
    ap.add_argument('--restricted', type=float, default=0.3,
                    help='share of the flavors restricted to some hosts')
    ap.add_argument('--restricted-hosts', type=float, default=0.25,
                    help='share of the hosts a restricted flavor may use')
    ap.add_argument('--groups', type=int, default=200)
    ap.add_argument('--aggressiveness', type=int, default=5,
                    help='planner aggressiveness (1-5); the target '
                         'imbalance is 0 so the budget decides')
    ap.add_argument('--prune-hosts', type=int, default=16,
                    help="SpreadPlanner's prune_hosts (0: score all pairs)")
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--profile', action='store_true',
                    help='print a cProfile of the first plan of each run')
    args = ap.parse_args()
    if args.case:
        cases = [tuple(int(x) for x in c.lower().split('x'))
                 for c in args.case]
    else:
        cases = QUICK_CASES if args.quick else FULL_CASES

    print('pair cost %.2f ms (simulated), %d moves, best of %d, '
          '%d%% of flavors on %d%% of hosts, aggressiveness %d, '
          'prune_hosts %d' % (
              args.pair_cost_ms, args.moves, args.repeat,
              100 * args.restricted, 100 * args.restricted_hosts,
              args.aggressiveness, args.prune_hosts))
    results = []
    for case in cases:
        t = time.perf_counter()
        results.append(bench(case, args))
        print('  %s done in %.1f s' % (label(case),
                                       time.perf_counter() - t))

    timing = prettytable.PrettyTable([
        'fleet', 'moves no/with', 'no oracle wall/CPU s',
        'oracle wall/CPU s', 'CPU ms/move', 'in fake s',
        'imbalance before', 'after no/with', 'refused w/o oracle'])
    for r in results:
        timing.add_row([
            label(r['case']), '%d/%d' % (r['moves0'], r['moves1']),
            '%.3f/%.3f' % (r['wall0'], r['cpu0']),
            '%.3f/%.3f' % (r['wall1'], r['cpu1']),
            '%.1f' % (1000 * r['cpu_move']), '%.3f' % r['fake'],
            '%.4f' % r['imb_before'],
            '%.4f/%.4f' % (r['imb0'], r['imb1']), r['refused0']])
    oracle = prettytable.PrettyTable([
        'fleet', 'sigs (restr.)', 'pairs', 'distinct', 're-asked',
        'max/pair', 'batches', 'S x H', 'pairs/SxH', 'sim s',
        'sim s/move', 'CPU+sim s'])
    for r in results:
        oracle.add_row([
            label(r['case']), '%d (%d)' % (r['sigs'], r['restricted']),
            r['pairs'], r['distinct'], r['reasked'], r['max_asked'],
            r['calls'], r['full'], '%.3f' % (r['pairs'] / r['full']),
            '%.1f' % r['sim'], '%.2f' % r['sim_move'],
            '%.1f' % (r['sim'] + r['cpu1'])])
    for t in (timing, oracle):
        t.align = 'r'
        t.align['fleet'] = 'l'
    print()
    print('Planner time (fleet building excluded)')
    print(timing)
    print()
    print('Oracle pairs (the simulated time is pairs x %.2f ms)'
          % args.pair_cost_ms)
    print(oracle)

    print()
    print('Key figures:')
    for r in results:
        print('  %s: %d moves, planner %.3f s wall without oracle, '
              '%.3f s CPU with; %d pairs asked (%d distinct) in %d '
              'batches = %.1f s simulated (%.2f s/move)' % (
                  label(r['case']), r['moves1'], r['wall0'], r['cpu1'],
                  r['pairs'], r['distinct'], r['calls'], r['sim'],
                  r['sim_move']))
    by_hs = collections.defaultdict(list)
    by_f = collections.defaultdict(list)
    for r in results:
        h, s, f = r['case']
        by_hs[(h, s)].append(r)
        by_f[f].append(r)
    print('Growth:')
    for rs in by_hs.values():
        rs.sort(key=lambda r: r['case'][2])
        for a, b in zip(rs, rs[1:]):
            print(ratio_line('flavors x%.1f' % (b['case'][2] / a['case'][2]),
                             a, b))
    for rs in by_f.values():
        rs.sort(key=lambda r: r['case'][0])
        for a, b in zip(rs, rs[1:]):
            print(ratio_line('hosts x%.1f' % (b['case'][0] / a['case'][0]),
                             a, b))


if __name__ == '__main__':
    main()
