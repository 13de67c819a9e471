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

"""Synthetic exporter data with exactly known rates.

A :class:`SyntheticCloud` describes hypervisors and the VMs on them.  From
it, :meth:`SyntheticCloud.series` produces the time series that
node_exporter (``job="node"``, port 9100) and the inovex libvirt exporter
(``job="libvirt"``, port 9177) would have exposed for the last ten minutes,
sampled every 15 s, with perfectly linear counters so that
``rate(x[5m])`` evaluated at ``now`` gives the configured rate exactly
(up to float rounding).  :meth:`SyntheticCloud.expected` gives the values
the sample policies in ``etc/nova-kronos/policies.yaml.sample`` must return.

Model -> series:

* node_exporter, ``instance="<host>:9100"``:

  - ``node_cpu_seconds_total{cpu="0".."N-1", mode="user"|"idle"}``; the
    busy rate ``overhead_cores + sum(vm.busy_cores)`` is spread evenly over
    the N cpus as ``mode="user"``, the rest of each cpu is ``mode="idle"``.
  - ``node_memory_MemTotal_bytes = mem_bytes``
  - ``node_memory_MemAvailable_bytes = mem_bytes - sum(vm.rss_bytes)
    - mem_overhead_bytes`` (``mem_overhead_bytes`` defaults to 0).
  - ``node_uname_info{nodename="<host>", ...} 1``

* libvirt exporter, ``instance="<host>:9177"``, per VM:

  - ``libvirt_domain_openstack_info{domain, instance_name, instance_id,
    flavor_name, project_id, ...} 1``
  - ``libvirt_domain_info_cpu_time_seconds_total{domain}`` rising at
    ``busy_cores`` per second,
  - ``libvirt_domain_info_virtual_cpus{domain} = vcpus``
  - ``libvirt_domain_memory_stats_rss_bytes{domain} = rss_bytes``

Queries must be evaluated at ``now`` (the time of the last sample), or at
most ~15 s later, for rates to be exact: Prometheus extrapolates a rate
window to its ends only while the gap to the nearest sample is below 1.1x
the sample interval.

:class:`VaryingCloud` adds loads that change from one sample interval to
the next in repeated patterns, for window-based queries
(``avg_over_time``, ``stddev_over_time`` over subqueries).
"""

import dataclasses
import math
import time
import uuid as uuidlib
from typing import List, Optional

NODE_PORT = 9100
LIBVIRT_PORT = 9177
DEFAULT_INTERVAL = 15      # seconds between samples
DEFAULT_DURATION = 600     # seconds of history (must exceed the 5m window)


@dataclasses.dataclass
class SyntheticVM:
    uuid: str
    domain: str                 # libvirt name, e.g. "instance-0000000a"
    vcpus: int
    busy_cores: float           # CPU seconds consumed per second
    rss_bytes: int
    flavor_name: str = 'm1.small'
    project_id: str = '0123456789abcdef0123456789abcdef'
    name: Optional[str] = None  # display name; defaults to the uuid prefix


@dataclasses.dataclass
class SyntheticHost:
    name: str
    cpus: int
    mem_bytes: int
    overhead_cores: float = 0.0          # busy cores not owned by any VM
    vms: List[SyntheticVM] = dataclasses.field(default_factory=list)
    mem_overhead_bytes: int = 0          # used memory not owned by any VM

    def busy_cores(self):
        return self.overhead_cores + sum(vm.busy_cores for vm in self.vms)

    def mem_available(self):
        return (self.mem_bytes - self.mem_overhead_bytes
                - sum(vm.rss_bytes for vm in self.vms))


def _linear(base, rate, start, timestamps):
    return [(ts * 1000, base + rate * (ts - start)) for ts in timestamps]


def _constant(value, timestamps):
    value = float(value)
    return [(ts * 1000, value) for ts in timestamps]


class SyntheticCloud(object):
    """Hypervisors and their VMs, convertible to exporter time series."""

    def __init__(self, hosts, interval=DEFAULT_INTERVAL,
                 duration=DEFAULT_DURATION):
        self.hosts = list(hosts)
        self.interval = int(interval)
        self.duration = int(duration)
        self.validate()

    # -- model ------------------------------------------------------------

    def host(self, name):
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError('no synthetic host %r' % name)

    def find(self, uuid):
        """Return ``(host, vm)`` for a VM uuid."""
        for host in self.hosts:
            for vm in host.vms:
                if vm.uuid == uuid:
                    return host, vm
        raise KeyError('no synthetic VM %r' % uuid)

    def move(self, uuid, dest_host, domain=None):
        """Migrate a VM to the host named ``dest_host``.

        ``domain`` optionally renames its libvirt domain (domain names are
        only unique per hypervisor).
        """
        source, vm = self.find(uuid)
        dest = self.host(dest_host)
        source.vms.remove(vm)
        if domain is not None:
            vm.domain = domain
        dest.vms.append(vm)
        self.validate()
        return vm

    def validate(self):
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ValueError('duplicate host names: %s' % names)
        uuids = set()
        for host in self.hosts:
            if host.cpus < 1:
                raise ValueError('%s: cpus must be >= 1' % host.name)
            if not 0 <= host.busy_cores() <= host.cpus:
                raise ValueError('%s: busy cores %s outside [0, %d]'
                                 % (host.name, host.busy_cores(), host.cpus))
            if host.mem_available() < 0:
                raise ValueError('%s: memory overcommitted' % host.name)
            domains = set()
            for vm in host.vms:
                if vm.uuid in uuids:
                    raise ValueError('duplicate VM uuid %s' % vm.uuid)
                if vm.domain in domains:
                    raise ValueError('%s: duplicate domain %s'
                                     % (host.name, vm.domain))
                if vm.busy_cores < 0:
                    raise ValueError('%s: negative busy_cores' % vm.uuid)
                uuids.add(vm.uuid)
                domains.add(vm.domain)

    # -- series -----------------------------------------------------------

    def timestamps(self, now):
        """Sample times in whole seconds, ending exactly at ``now``."""
        now = int(now)
        count = self.duration // self.interval
        return [now - (count - i) * self.interval for i in range(count + 1)]

    def series(self, now):
        """Yield ``(labels, [(timestamp_ms, value), ...])`` for all series.

        Sample times are whole seconds ending at ``now`` (seconds).
        """
        self.validate()
        stamps = self.timestamps(now)
        start = stamps[0]
        for host in self.hosts:
            yield from self._node_series(host, stamps, start)
            yield from self._libvirt_series(host, stamps, start)

    def _node_series(self, host, stamps, start):
        common = {'instance': '%s:%d' % (host.name, NODE_PORT),
                  'job': 'node'}
        for cpu in range(host.cpus):
            # Large, distinct bases (like a machine up for ~12 days) make
            # sure extrapolation never clamps at zero.
            for mode, base in (('idle', 1.0e6), ('user', 2.0e5)):
                labels = dict(common, __name__='node_cpu_seconds_total',
                              cpu=str(cpu), mode=mode)
                yield labels, self._cpu_samples(host, mode, base + cpu,
                                                start, stamps)
        yield (dict(common, __name__='node_memory_MemTotal_bytes'),
               _constant(host.mem_bytes, stamps))
        yield (dict(common, __name__='node_memory_MemAvailable_bytes'),
               self._mem_available_samples(host, stamps))
        yield (dict(common, __name__='node_uname_info', nodename=host.name,
                    sysname='Linux', release='6.1.0-synthetic',
                    version='#1 SMP', machine='x86_64',
                    domainname='(none)'),
               _constant(1, stamps))

    def _libvirt_series(self, host, stamps, start):
        common = {'instance': '%s:%d' % (host.name, LIBVIRT_PORT),
                  'job': 'libvirt'}
        for idx, vm in enumerate(host.vms):
            per_domain = dict(common, domain=vm.domain)
            yield (dict(per_domain, __name__='libvirt_domain_openstack_info',
                        instance_name=vm.name or 'vm-%s' % vm.uuid[:8],
                        instance_id=vm.uuid, flavor_name=vm.flavor_name,
                        project_id=vm.project_id, project_name='demo',
                        user_id='fedcba9876543210fedcba9876543210',
                        user_name='demo'),
                   _constant(1, stamps))
            yield (dict(per_domain,
                        __name__='libvirt_domain_info_cpu_time_seconds_total'),
                   self._vm_cpu_samples(vm, 1000.0 * (idx + 1), start,
                                        stamps))
            yield (dict(per_domain,
                        __name__='libvirt_domain_info_virtual_cpus'),
                   _constant(vm.vcpus, stamps))
            yield (dict(per_domain,
                        __name__='libvirt_domain_memory_stats_rss_bytes'),
                   self._vm_rss_samples(vm, stamps))

    # -- sample values (VaryingCloud makes them change in time) ------------

    def _cpu_samples(self, host, mode, base, start, stamps):
        """A host's per-cpu ``mode`` counter, starting at ``base``."""
        user = host.busy_cores() / host.cpus
        return _linear(base, user if mode == 'user' else 1.0 - user, start,
                       stamps)

    def _mem_available_samples(self, host, stamps):
        return _constant(host.mem_available(), stamps)

    def _vm_cpu_samples(self, vm, base, start, stamps):
        return _linear(base, vm.busy_cores, start, stamps)

    def _vm_rss_samples(self, vm, stamps):
        return _constant(vm.rss_bytes, stamps)

    # -- expectations -----------------------------------------------------

    def expected(self):
        """Exact values the sample ``cpu`` and ``memory`` policies return.

        ``{"cpu": {"hosts": {host: load}, "vms": {uuid: share}},
           "memory": {...}}``
        """
        cpu = {'hosts': {}, 'vms': {}}
        mem = {'hosts': {}, 'vms': {}}
        for host in self.hosts:
            cpu['hosts'][host.name] = host.busy_cores() / host.cpus
            mem['hosts'][host.name] = 1 - host.mem_available() / host.mem_bytes
            for vm in host.vms:
                cpu['vms'][vm.uuid] = vm.busy_cores / host.cpus
                mem['vms'][vm.uuid] = vm.rss_bytes / host.mem_bytes
        return {'cpu': cpu, 'memory': mem}

    # -- loading ----------------------------------------------------------

    def load_into(self, server, now=None):
        """Remote-write all series into ``server`` (a PrometheusServer).

        ``now`` defaults to the current time (whole seconds).  Returns the
        ``now`` used; evaluate queries at that time.
        """
        if now is None:
            now = int(time.time())
        server.remote_write(self.series(now))
        return int(now)


GIB = 1 << 30


def round_robin_cloud(hosts, vms, busy_unit=0.01, rss_unit=GIB):
    """A cloud for scale tests: ``vms`` VMs dealt round-robin to ``hosts``.

    Hosts cycle through 16/32/48/64 cpus and 128/192/256 GiB with 0.5 busy
    cores of overhead; VM ``i`` (UUID ``int=1000 + i``) has 2 vCPUs,
    ``busy_unit * (i % 37)`` busy cores and ``(1 + i % 4) * rss_unit``
    bytes of RSS, so every load is known exactly. Choose the units so no
    host is overcommitted (:meth:`SyntheticCloud.validate` checks).
    """
    cpus_cycle = (16, 32, 48, 64)
    cloud_hosts = [
        SyntheticHost('perf%02d' % h, cpus=cpus_cycle[h % 4],
                      mem_bytes=(128 + 64 * (h % 3)) * GIB,
                      overhead_cores=0.5)
        for h in range(hosts)]
    for i in range(vms):
        host = cloud_hosts[i % hosts]
        host.vms.append(SyntheticVM(
            str(uuidlib.UUID(int=1000 + i)),
            'instance-%08x' % (len(host.vms) + 1), vcpus=2,
            busy_cores=busy_unit * (i % 37),
            rss_bytes=(1 + i % 4) * rss_unit))
    return SyntheticCloud(cloud_hosts)


# -- time-varying loads ----------------------------------------------------

#: Seconds of history a VaryingCloud writes by default: more than the
#: 30m + 5m a ``[30m:1m]`` subquery over a 5-minute rate reads.
VARYING_DURATION = 2400


class VaryingCloud(SyntheticCloud):
    """A :class:`SyntheticCloud` whose VMs' CPU use and RSS change in time.

    For window-based queries (``avg_over_time(X[30m:1m])``,
    ``stddev_over_time``). Each VM listed in ``busy`` (uuid -> sequence of
    busy cores) or ``rss`` (uuid -> sequence of bytes) follows its
    sequence, one value per sample interval, repeated; the others keep their
    constant ``busy_cores`` / ``rss_bytes``. A value belongs to the
    absolute interval number ``timestamp // interval``: the busy value
    ``seq[(s // interval) % len(seq)]`` is the rate of the CPU counters
    between the sample before ``s`` and the sample at ``s`` (counters stay
    piecewise linear, so a rate window holding whole intervals is the mean
    of their values), and the RSS value is the gauge sampled at ``s``.

    With ``interval=60`` (the default here) and the last sample at a time
    that is not a whole minute, a ``[5m]`` rate evaluated on a whole minute
    sees 5 samples, none on its edges, and Prometheus extrapolates it to the
    window's edges (both gaps are below 1.1 intervals): it equals the mean
    of exactly 4 consecutive interval values, whether the range's left end
    is open (Prometheus 3) or closed (2.x). A subquery ``[30m:1m]``
    evaluated at that time has 30 points, none on its left edge. A pattern
    whose period divides 30 intervals thus gives the same mean and standard
    deviation whatever its phase.

    The base class's :meth:`SyntheticCloud.series` layout, labels and
    counter bases are kept; :meth:`expected` is not offered: window values
    depend on the query and are worked out by hand in the tests.
    """

    def __init__(self, hosts, busy=None, rss=None, interval=60,
                 duration=VARYING_DURATION):
        self.busy = {uuid: tuple(float(v) for v in seq)
                     for uuid, seq in (busy or {}).items()}
        self.rss = {uuid: tuple(int(v) for v in seq)
                    for uuid, seq in (rss or {}).items()}
        super().__init__(hosts, interval=interval, duration=duration)

    # -- model ------------------------------------------------------------

    def _value(self, table, vm, default, ts):
        seq = table.get(vm.uuid)
        if not seq:
            return default
        return seq[(int(ts) // self.interval) % len(seq)]

    def vm_busy(self, vm, ts):
        """Busy cores of ``vm`` in the interval ending at ``ts``."""
        return self._value(self.busy, vm, vm.busy_cores, ts)

    def vm_rss(self, vm, ts):
        """RSS bytes of ``vm`` sampled at ``ts``."""
        return self._value(self.rss, vm, vm.rss_bytes, ts)

    def host_busy(self, host, ts):
        return host.overhead_cores + sum(self.vm_busy(vm, ts)
                                         for vm in host.vms)

    def host_mem_available(self, host, ts):
        return (host.mem_bytes - host.mem_overhead_bytes
                - sum(self.vm_rss(vm, ts) for vm in host.vms))

    def validate(self):
        super().validate()
        known = {vm.uuid for host in self.hosts for vm in host.vms}
        for table in (self.busy, self.rss):
            for uuid, seq in table.items():
                if uuid not in known:
                    raise ValueError('pattern for unknown VM %s' % uuid)
                if not seq:
                    raise ValueError('%s: empty pattern' % uuid)
                if min(seq) < 0:
                    raise ValueError('%s: negative value in pattern' % uuid)
        # Every phase of every pattern, on every host.
        patterns = list(self.busy.values()) + list(self.rss.values())
        period = math.lcm(*(len(seq) for seq in patterns))
        for host in self.hosts:
            for step in range(period):
                ts = step * self.interval
                if not 0 <= self.host_busy(host, ts) <= host.cpus:
                    raise ValueError('%s: busy cores %s outside [0, %d]'
                                     % (host.name, self.host_busy(host, ts),
                                        host.cpus))
                if self.host_mem_available(host, ts) < 0:
                    raise ValueError('%s: memory overcommitted'
                                     % host.name)

    def expected(self):
        raise NotImplementedError(
            'window-based values depend on the query: work them out by hand')

    # -- series -----------------------------------------------------------

    def _counter(self, base, rate_at, stamps):
        """Samples of a counter rising at ``rate_at(ts)`` before ``ts``."""
        value = base
        samples = [(stamps[0] * 1000, value)]
        for before, ts in zip(stamps, stamps[1:]):
            value += rate_at(ts) * (ts - before)
            samples.append((ts * 1000, value))
        return samples

    def _cpu_samples(self, host, mode, base, start, stamps):
        def user(ts):
            return self.host_busy(host, ts) / host.cpus

        return self._counter(base, user if mode == 'user'
                             else (lambda ts: 1.0 - user(ts)), stamps)

    def _mem_available_samples(self, host, stamps):
        return [(ts * 1000, float(self.host_mem_available(host, ts)))
                for ts in stamps]

    def _vm_cpu_samples(self, vm, base, start, stamps):
        return self._counter(base, lambda ts: self.vm_busy(vm, ts), stamps)

    def _vm_rss_samples(self, vm, stamps):
        return [(ts * 1000, float(self.vm_rss(vm, ts))) for ts in stamps]
