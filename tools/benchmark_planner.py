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

"""Benchmark the planners on synthetic fleets (pure core only).

Usage: python tools/benchmark_planner.py [--scales 50/5000,200/20000,...]
       [--moves 50] [--groups 2000] [--planner spread|pack|drain]
       [--aggressiveness 3] [--no-migration-cost] [--full-cold]

For each scale (hosts/servers) prints the moves planned with the given
settings (default: the defaults operators get), the wall time of the plan,
the peak of memory allocated while planning (tracemalloc, which counts
numpy arrays) and the process' peak resident size, and the imbalance
before and after. Fleets are random but seeded: 70% of the servers crowd
the first half of the hosts, server groups of 3 members cycle through the
four policies, and RAM sizes are mixed (1 to 64 GiB) with load shares
that do not depend on the size. ``--full-cold`` leaves the least loaded
half of the hosts without free RAM, so that every move towards them is
refused for capacity.
"""

import argparse
import random
import resource
import time
import tracemalloc

from nova_kronos import fleet
from nova_kronos import metrics
from nova_kronos import planner
from nova_kronos.planner import drain
from nova_kronos.planner import pack
from nova_kronos.planner import spread
from nova_kronos import policy

#: (vCPUs, RAM GiB, share of servers): small flavors dominate.
FLAVORS = ((1, 1, .3), (2, 2, .3), (2, 4, .2), (4, 8, .1), (8, 16, .07),
           (16, 64, .03))


def make(n_hosts, n_servers, n_groups, seed=1):
    """A seeded random (fleet, snapshot); see the module docstring."""
    rng = random.Random(seed)
    hosts = [fleet.Host(name='h%04d' % i, availability_zone='az1',
                        vcpus=128, vcpus_capacity=512, memory_mb=1048576,
                        memory_mb_capacity=1572864)
             for i in range(n_hosts)]
    snap = metrics.Snapshot(data={'cpu': metrics.PolicyData(),
                                  'memory': metrics.PolicyData()})
    servers = []
    crowd = 0.7 * n_servers / (n_hosts / 2)
    for i in range(n_servers):
        hi = (rng.randrange(n_hosts // 2) if i < 0.7 * n_servers
              else rng.randrange(n_hosts))
        h = hosts[hi]
        vcpus, gib, _ = rng.choices(FLAVORS, [f[2] for f in FLAVORS])[0]
        s = fleet.Server(id='s%06d' % i, name='vm%d' % i, host=h.name,
                         vcpus=vcpus, memory_mb=gib * 1024)
        servers.append(s)
        h.vcpus_used += vcpus
        h.memory_mb_used += gib * 1024
        snap.data['cpu'].vms[s.id] = rng.uniform(0.0, 2.0 * 0.7 / crowd)
        snap.data['memory'].vms[s.id] = gib / 1024.0
    for p in snap.data.values():
        for h in hosts:
            p.hosts[h.name] = 0.0
        for s in servers:
            p.hosts[s.host] += p.vms[s.id]
        top = max(p.hosts.values())
        if top > 0.95:
            for k in p.hosts:
                p.hosts[k] *= 0.95 / top
            for k in p.vms:
                p.vms[k] *= 0.95 / top
    kinds = ['anti-affinity', 'affinity', 'soft-anti-affinity',
             'soft-affinity']
    groups = []
    for g in range(min(n_groups, n_servers // 3)):
        members = tuple('s%06d' % (g * 3 + k) for k in range(3))
        if kinds[g % 4] in ('anti-affinity', 'affinity'):
            # Start valid: anti-affinity members apart, affinity together.
            hs = (rng.sample(range(n_hosts), 3) if kinds[g % 4] ==
                  'anti-affinity' else [rng.randrange(n_hosts)] * 3)
            for m, hi in zip(members, hs):
                _relocate(servers[int(m[1:])], hosts, hi, snap)
        groups.append(fleet.ServerGroup(id='g%d' % g, name='g%d' % g,
                                        policy=kinds[g % 4],
                                        members=members))
    aggs = [fleet.Aggregate('agg', tuple(h.name for h in hosts), 'az1')]
    return fleet.Fleet.build(hosts, servers, groups, aggs), snap


def _relocate(server, hosts, hi, snap):
    old = hosts[int(server.host[1:])]
    new = hosts[hi]
    old.vcpus_used -= server.vcpus
    old.memory_mb_used -= server.memory_mb
    new.vcpus_used += server.vcpus
    new.memory_mb_used += server.memory_mb
    for p in snap.data.values():
        p.hosts[old.name] = p.hosts.get(old.name, 0.0) - p.vms[server.id]
        p.hosts[new.name] = p.hosts.get(new.name, 0.0) + p.vms[server.id]
    server.host = new.name


def policies(mode):
    return policy.from_dict({'policies': {
        name: {'mode': mode, 'weight': w, 'threshold': 0.9,
               'host_query': name, 'host_label': 'nodename',
               'vm_query': name + '_vm', 'vm_label': 'instance_id',
               'resource': res}
        for name, w, res in (('cpu', 0.6, 'vcpu'),
                             ('memory', 0.4, 'memory_mb'))
    }})


POLICIES = policies('spread')


def run(n_hosts, n_servers, args):
    fl, snap = make(n_hosts, n_servers, args.groups)
    if args.full_cold:
        # The least loaded half has no RAM left: moves there are refused
        # for capacity (memory-bound hosts with idle CPUs).
        cpu = snap.data['cpu'].hosts
        for h in sorted(fl.hosts.values(),
                        key=lambda h: cpu[h.name])[:n_hosts // 2]:
            h.memory_mb_capacity = h.memory_mb_used
    settings = planner.Settings(aggressiveness=args.aggressiveness,
                                migration_cost=args.migration_cost)
    if args.planner == 'pack':
        chosen, mode = pack.PackPlanner(settings), 'pack'
    elif args.planner == 'drain':
        chosen = drain.DrainPlanner(['h0000'], settings)
        mode = 'spread'
    else:
        chosen, mode = spread.SpreadPlanner(settings), 'spread'
    tracemalloc.start()
    t = time.perf_counter()
    plan = chosen.plan(fl, policies(mode), snap, args.moves)
    dt = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return fl, plan, dt, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--scales', default='50/5000,200/20000,1000/100000',
                    help='comma-separated hosts/servers pairs')
    ap.add_argument('--moves', type=int, default=50)
    ap.add_argument('--groups', type=int, default=2000)
    ap.add_argument('--planner', choices=('spread', 'pack', 'drain'),
                    default='spread')
    ap.add_argument('--aggressiveness', type=int, default=3)
    ap.add_argument('--full-cold', action='store_true',
                    help='the least loaded half of the hosts has no RAM '
                         'left (moves there are refused for capacity)')
    ap.add_argument('--migration-cost', default=True,
                    action=argparse.BooleanOptionalAction)
    args = ap.parse_args()
    print('planner %s, aggressiveness %d, migration cost %s, budget %d '
          'moves, %d groups' % (args.planner, args.aggressiveness,
                                'on' if args.migration_cost else 'off',
                                args.moves, args.groups))
    print('%7s %8s %6s %9s %12s %10s %8s %17s' % (
        'hosts', 'servers', 'moves', 'time s', 'alloc peak', 'max RSS',
        'GiB', 'imbalance'))
    for scale in args.scales.split(','):
        n_hosts, n_servers = (int(x) for x in scale.split('/'))
        fl, plan, dt, peak = run(n_hosts, n_servers, args)
        agg = plan.aggregates[0]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print('%7d %8d %6d %9.2f %9.0f MiB %6.0f MiB %8.1f %8.4f->%.4f' % (
            n_hosts, n_servers, len(plan.moves), dt, peak / 2.0 ** 20, rss,
            plan.migrated_gib, agg.imbalance_before, agg.imbalance_after))


if __name__ == '__main__':
    main()
