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


"""Small builders for pure-core unit tests."""

from nova_kronos import fleet
from nova_kronos import metrics
from nova_kronos import policy

QUERIES = {'cpu': ('cpu_host', 'cpu_vm'), 'mem': ('mem_host', 'mem_vm')}


def policy_set(cpu_weight=0.5, mem_weight=0.5, threshold=0.9, mode='spread',
               resource=None):
    return policy.from_dict({'policies': {
        'cpu': {'mode': mode, 'weight': cpu_weight, 'threshold': threshold,
                'host_query': 'cpu_host', 'host_label': 'nodename',
                'vm_query': 'cpu_vm', 'vm_label': 'instance_id',
                **({'resource': resource} if resource else {})},
        'mem': {'mode': mode, 'weight': mem_weight, 'threshold': threshold,
                'host_query': 'mem_host', 'host_label': 'nodename',
                'vm_query': 'mem_vm', 'vm_label': 'instance_id'},
    }})


def host(name, az='az1', vcpus=16, ratio=4.0, memory_mb=65536, **kw):
    return fleet.Host(name=name, availability_zone=az, vcpus=vcpus,
                      vcpus_capacity=vcpus * ratio, memory_mb=memory_mb,
                      memory_mb_capacity=memory_mb, **kw)


def build(layout, groups=(), hosts=None, share=0.1, extra_hosts=()):
    """Build (fleet, snapshot) from ``layout``: {host: [server ids]}.

    Each server gets ``share`` of its host for both policies.
    """
    hosts = hosts or [host(h) for h in list(layout) + list(extra_hosts)]
    by_name = {h.name: h for h in hosts}
    servers = []
    snap = metrics.Snapshot(data={'cpu': metrics.PolicyData(),
                                  'mem': metrics.PolicyData()})
    for h in by_name:
        for p in snap.data.values():
            p.hosts[h] = 0.0
    for h, ids in layout.items():
        for sid in ids:
            servers.append(fleet.Server(id=sid, name='vm-' + sid, host=h,
                                        vcpus=1, memory_mb=1024))
            by_name[h].vcpus_used += 1
            by_name[h].memory_mb_used += 1024
            for p in snap.data.values():
                p.vms[sid] = share
                p.hosts[h] += share
    aggs = [fleet.Aggregate('agg1', tuple(by_name), 'az1')]
    return fleet.Fleet.build(hosts, servers, groups, aggs), snap


class ListSource(metrics.MetricSource):
    """Answers queries from a dict query -> [(labels, value)]."""

    def __init__(self, answers):
        super().__init__()
        self.answers = answers
        self.calls = []

    def query(self, promql, deadline=None):
        self.calls.append(promql)
        if isinstance(self.answers, Exception):
            raise self.answers
        return self.answers.get(promql, [])


class Clock:
    """A monotonic clock tests move by hand: ``clock.now += 31``."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now
