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

"""Benchmark the spread planner on synthetic fleets (pure core only).

Usage: python tools/benchmark_planner.py [--hosts 50] [--servers 5000]
       [--moves 20] [--groups 200] [--repeat 3]

Prints wall time per planned move and for the whole plan. Fleets are
random but seeded: 70% of the servers crowd the first half of the hosts,
with anti-affinity, affinity and soft groups of 3 members.
"""

import argparse
import random
import time

from nova_kronos import fleet
from nova_kronos import metrics
from nova_kronos.planner import spread
from nova_kronos import policy


def make(n_hosts, n_servers, n_groups, seed=1):
    rng = random.Random(seed)
    hosts = [fleet.Host(name='h%04d' % i, availability_zone='az1', vcpus=64,
                        vcpus_capacity=256, memory_mb=262144,
                        memory_mb_capacity=393216)
             for i in range(n_hosts)]
    snap = metrics.Snapshot(data={'cpu': metrics.PolicyData(),
                                  'memory': metrics.PolicyData()})
    servers = []
    for i in range(n_servers):
        hi = (rng.randrange(n_hosts // 2) if i < 0.7 * n_servers
              else rng.randrange(n_hosts))
        h = hosts[hi]
        s = fleet.Server(id='s%06d' % i, name='vm%d' % i, host=h.name,
                         vcpus=2, memory_mb=2048)
        servers.append(s)
        h.vcpus_used += 2
        h.memory_mb_used += 2048
        snap.data['cpu'].vms[s.id] = rng.uniform(0.0, 2.0 * 0.7 / (
            0.7 * n_servers / (n_hosts / 2)))
        snap.data['memory'].vms[s.id] = 2048 / 262144
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
    groups = [fleet.ServerGroup(
        id='g%d' % g, name='g%d' % g, policy=kinds[g % 4],
        members=tuple('s%06d' % (g * 3 + k) for k in range(3)))
        for g in range(min(n_groups, n_servers // 3))]
    aggs = [fleet.Aggregate('agg', tuple(h.name for h in hosts), 'az1')]
    return fleet.Fleet.build(hosts, servers, groups, aggs), snap


POLICIES = policy.from_dict({'policies': {
    name: {'mode': 'spread', 'weight': w, 'threshold': 0.9,
           'host_query': name, 'host_label': 'nodename',
           'vm_query': name + '_vm', 'vm_label': 'instance_id',
           'resource': res}
    for name, w, res in (('cpu', 0.6, 'vcpu'), ('memory', 0.4, 'memory_mb'))
}})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--hosts', type=int, default=50)
    ap.add_argument('--servers', type=int, default=5000)
    ap.add_argument('--moves', type=int, default=20)
    ap.add_argument('--groups', type=int, default=200)
    ap.add_argument('--repeat', type=int, default=3)
    args = ap.parse_args()
    fl, snap = make(args.hosts, args.servers, args.groups)
    best = None
    for _ in range(args.repeat):
        fl2, snap2 = make(args.hosts, args.servers, args.groups)
        t = time.perf_counter()
        plan = spread.SpreadPlanner(min_improvement=1e-6).plan(
            fl2, POLICIES, snap2, args.moves)
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    agg = plan.aggregates[0]
    print('%d hosts, %d servers, %d groups: %d moves in %.3f s '
          '(%.1f ms/move), imbalance %.4f -> %.4f' % (
              args.hosts, args.servers, len(fl.groups), len(plan.moves),
              best, 1000 * best / max(1, len(plan.moves)),
              agg.imbalance_before, agg.imbalance_after))


if __name__ == '__main__':
    main()
