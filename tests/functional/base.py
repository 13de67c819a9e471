"""Base for functional tests: real Nova in-process + a real Prometheus.

Import this module first in functional test modules: it imports the Nova
harness before anything else (eventlet patching order).
"""

from tests.harness import nova_cloud  # noqa: I100  isort:skip

import io
import json
import os
import time

import fixtures

from nova_kronos.cmd import manage
from nova_kronos.scheduler import loads
from tests.harness import prometheus
from tests.harness import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SAMPLE_POLICIES = os.path.join(ROOT, 'etc', 'nova-kronos',
                               'policies.yaml.sample')
GIB = 1 << 30
HOST_CPUS = 10
HOST_MEM = 8 * GIB


class KronosFunctionalTestCase(nova_cloud.NovaCloudTestCase):
    """Nova with our weigher and filter, and a real Prometheus.

    4 computes in aggregate ``agg1`` (AZ ``az1``); Prometheus serves
    synthetic exporter series.
    """

    #: Only our weigher, so placement is decided by the Prometheus data.
    weight_classes = ['nova_kronos.scheduler.weights.PrometheusWeigher']

    def configure_scheduler(self):
        binary = prometheus.find_prometheus_binary()
        if binary is None:
            self.skipTest('prometheus binary not found (apt-get install '
                          'prometheus, or set KRONOS_PROMETHEUS_BIN)')
        self.prom = self.useFixture(prometheus.PrometheusServer(binary))
        loads.reset_shared_cache()
        self.addCleanup(loads.reset_shared_cache)
        self.flags(weight_classes=self.weight_classes,
                   available_filters=[
                       'nova.scheduler.filters.all_filters',
                       'nova_kronos.scheduler.filters.PrometheusFilter'],
                   enabled_filters=[
                       'ComputeFilter', 'ComputeCapabilitiesFilter',
                       'ImagePropertiesFilter',
                       'ServerGroupAntiAffinityFilter',
                       'ServerGroupAffinityFilter', 'PrometheusFilter'],
                   group='filter_scheduler')
        self.flags(policies_file=SAMPLE_POLICIES, weigher_cache_ttl=0,
                   failure_backoff=0, group='kronos')
        self.flags(url=self.prom.url, timeout=2, retries=0,
                   group='kronos_prometheus')

    def setUp(self):
        super().setUp()
        self.agg = self.create_aggregate('agg1', self.compute_hosts,
                                         availability_zone='az1')
        self.conn = self.sdk_connection()
        workdir = self.useFixture(fixtures.TempDir()).path
        self.conf_path = os.path.join(workdir, 'nova.conf')
        with open(self.conf_path, 'w') as f:
            f.write('[kronos]\npolicies_file = %s\n'
                    '[kronos_prometheus]\nurl = %s\ntimeout = 2\n'
                    'retries = 0\n'
                    '[kronos_rebalance]\npoll_interval = 0.2\n'
                    'migration_timeout = 120\nmin_improvement = 0.001\n'
                    % (SAMPLE_POLICIES, self.prom.url))

    # -- metrics -------------------------------------------------------------

    def publish(self, layout, overhead=None, mem_overhead=None):
        """Serve exporter series for ``layout`` from the real Prometheus.

        :param layout: {host: [(server_id, busy_cores, rss_bytes)]}.
        :param overhead: {host: busy cores outside any VM}.
        :param mem_overhead: {host: bytes used outside any VM}.
        :returns: ``SyntheticCloud.expected()``: exact policy values.
        """
        overhead = overhead or {}
        mem_overhead = mem_overhead or {}
        hosts = []
        for name in self.compute_hosts:
            vms = [synthetic.SyntheticVM(
                uuid=sid, domain='instance-%08x' % (i + 1), vcpus=1,
                busy_cores=busy, rss_bytes=rss)
                for i, (sid, busy, rss) in enumerate(layout.get(name, ()))]
            hosts.append(synthetic.SyntheticHost(
                name=name, cpus=HOST_CPUS, mem_bytes=HOST_MEM,
                overhead_cores=overhead.get(name, 0.0),
                mem_overhead_bytes=mem_overhead.get(name, 0), vms=vms))
        cloud = synthetic.SyntheticCloud(hosts, duration=1800)
        self.prom.reset()
        # Samples run 15 min into the future so rate() stays exact for the
        # whole test (Prometheus accepts future samples by remote write).
        cloud.load_into(self.prom, now=time.time() + 900)
        return cloud.expected()

    def publish_host_loads(self, cpu, memory):
        """Serve data giving each host exactly the given loads.

        :param cpu: {host: load}; :param memory: {host: load}.
        """
        overhead = {h: cpu[h] * HOST_CPUS for h in cpu}
        mem = {h: int(round(memory[h] * HOST_MEM)) for h in memory}
        return self.publish({}, overhead=overhead, mem_overhead=mem)

    # -- command -----------------------------------------------------------

    def rebalance(self, *args):
        """Run the real command in-process; returns (code, json, stderr)."""
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', self.conf_path, 'kronos',
                            'rebalance', '--format', 'json'] + list(args),
                           conn=self.conn, out=out, err=err)
        text = out.getvalue()
        return code, (json.loads(text) if text.strip() else None), \
            err.getvalue()

    def hosts_of(self, server_ids):
        return {s: self.host_of(s) for s in server_ids}
