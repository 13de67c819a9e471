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


"""The embedded cloud that the functional tests and the demo share.

``KronosCloudTestCase`` is :class:`tests.harness.nova_cloud.NovaCloudTestCase`
(real Nova in-process) with nova-kronos switched on the way README.rst
tells operators to: our weigher and filter in ``[filter_scheduler]``, the
sample policies, and host loads served by a real Prometheus on 127.0.0.1
(``use_prometheus = False``: the file-backed metric source instead). It
creates one aggregate over every compute host, an openstacksdk connection
and a nova.conf for ``nova-kronos-manage``, and offers:

* :meth:`publish` / :meth:`publish_cloud`: serve synthetic exporter series
  whose loads are exactly known (``SyntheticCloud.expected()``);
* :meth:`manage`: run the real ``nova-kronos-manage`` in-process;
* :meth:`product_conf` and :meth:`measured_loads`: read host loads back
  through the product's own metric source, as the rebalancer sees them.

Import this module (or :mod:`tests.harness.nova_cloud`) before anything
that imports requests, keystoneauth1 or openstacksdk.
"""

from tests.harness import nova_cloud  # noqa: I100  isort:skip

import io
import json
import os
import re
import time

import fixtures
from oslo_config import cfg

from nova_kronos.cmd import manage
from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos import rebalance
from nova_kronos.scheduler import loads
from tests.harness import prometheus
from tests.harness import synthetic

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SAMPLE_POLICIES = os.path.join(ROOT, 'etc', 'nova-kronos',
                               'policies.yaml.sample')
GIB = 1 << 30

#: nova.conf [filter_scheduler] as README.rst recommends it.
AVAILABLE_FILTERS = ['nova.scheduler.filters.all_filters',
                     'nova_kronos.scheduler.filters.PrometheusFilter']
ENABLED_FILTERS = ['ComputeFilter', 'ComputeCapabilitiesFilter',
                   'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                   'ServerGroupAffinityFilter', 'PrometheusFilter']
README = os.path.join(ROOT, 'README.rst')


def readme_scheduler_conf(path=README, section='Scheduler configuration'):
    """The nova.conf snippet of a section of an rst file (README.rst's).

    :param path: the rst file.
    :param section: a section title (``=`` or ``-`` underline); None: the
        file's first ini block.
    :returns: ``{section: {option: [values]}}`` in file order; an option
        given twice (``available_filters``) has two values.
    :raises AssertionError: the section or its ``ini`` block is missing.
    """
    with open(path) as f:
        text = f.read()
    if section is not None:
        match = re.search(r'^%s\n[=-]+\n(.*?)(?:^\S[^\n]*\n[=-]+\n|\Z)'
                          % re.escape(section), text, re.S | re.M)
        assert match, '%s has no "%s" section' % (path, section)
        text = match.group(1)
    block = re.search(r'\.\. code-block:: ini\n\n((?:   [^\n]*\n|\n)+)',
                      text)
    assert block, '%s: no ini block in "%s"' % (path, section)
    conf, group = {}, None
    for line in block.group(1).splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            group = conf.setdefault(line.strip('[]'), {})
            continue
        key, _, value = line.partition('=')
        group.setdefault(key.strip(), []).append(value.strip())
    return conf


class KronosCloudTestCase(nova_cloud.NovaCloudTestCase):
    """Nova with the kronos weigher and filter, and a metric source."""

    #: Only our weigher, so placement is decided by the metric data.
    weight_classes = ['nova_kronos.scheduler.weights.PrometheusWeigher']
    #: True: configure [filter_scheduler], [kronos] and [kronos_prometheus]
    #: exactly as README.rst's snippet says (see :meth:`apply_readme_conf`)
    #: instead of ``weight_classes`` and a zero cache TTL.
    readme_scheduler = False
    #: Aggregate created over every compute host in setUp.
    aggregate_name = 'agg1'
    availability_zone = 'az1'
    #: A real Prometheus (True) or the file-backed metric source (False).
    use_prometheus = True
    #: [kronos_rebalance] of the command's nova.conf.
    rebalance_options = {'poll_interval': 0.2, 'migration_timeout': 120}

    # -- synthetic host size: the fake driver's, unless overridden ----------

    @property
    def metric_host_cpus(self):
        return self.host_vcpus or 10

    @property
    def metric_host_mem(self):
        return (self.host_memory_mb or 8192) << 20

    # -- setup ---------------------------------------------------------------

    def configure_scheduler(self):
        self.prom = None
        self._workdir = self.useFixture(fixtures.TempDir()).path
        self.metrics_file = os.path.join(self._workdir, 'metrics.json')
        if self.use_prometheus:
            binary = prometheus.require_prometheus(self)
            self.prom = self.useFixture(prometheus.PrometheusServer(binary))
        loads.reset_shared_cache()
        self.addCleanup(loads.reset_shared_cache)
        if self.readme_scheduler:
            self.apply_readme_conf()
            return
        self.flags(weight_classes=self.weight_classes,
                   available_filters=AVAILABLE_FILTERS,
                   enabled_filters=ENABLED_FILTERS,
                   group='filter_scheduler')
        self.flags(policies_file=SAMPLE_POLICIES, weigher_cache_ttl=0,
                   failure_backoff=0, group='kronos')
        if self.prom:
            self.flags(url=self.prom.url, timeout=2, retries=0,
                       group='kronos_prometheus')
        else:
            self.flags(metric_source='file', metrics_file=self.metrics_file,
                       group='kronos')

    def apply_readme_conf(self):
        """Set nova.conf as README.rst's scheduler snippet says.

        Every option of the snippet is applied with its value, except what
        names this machine: ``policies_file`` (the sample policies),
        ``[kronos_prometheus] url`` (the test's Prometheus, plain HTTP, so
        ``ca_file`` is dropped), or, without Prometheus, the file source.
        """
        readme = readme_scheduler_conf()
        lists = {'enabled_filters', 'weight_classes'}
        for group, options in readme.items():
            for name, values in options.items():
                if group == 'filter_scheduler' and name in lists:
                    value = [v.strip() for v in values[-1].split(',')]
                elif group == 'filter_scheduler':
                    value = values  # MultiStrOpt: every line counts
                elif name == 'policies_file':
                    value = SAMPLE_POLICIES
                elif group == 'kronos_prometheus' and name in ('url',
                                                               'ca_file'):
                    continue
                else:
                    value = values[-1]
                self.flags(**{name: value, 'group': group})
        if self.prom:
            self.flags(url=self.prom.url, group='kronos_prometheus')
        else:
            self.flags(metric_source='file', metrics_file=self.metrics_file,
                       group='kronos')

    def setUp(self):
        super().setUp()
        self.policies_path = SAMPLE_POLICIES
        self.agg = self.create_aggregate(
            self.aggregate_name, self.compute_hosts,
            availability_zone=self.availability_zone)
        self.conn = self.sdk_connection()
        self.conf_path = os.path.join(self._workdir, 'nova.conf')
        self.write_conf()

    def settle_metrics_at_once(self, **rebalance_options):
        """Declare the sample policies' metrics settled right away.

        Synthetic series are published as if they had always been so: a
        republished placement does not lag behind a migration the way
        Prometheus' rate windows do. Tests that republish after migrating
        and compare the plan with the new loads use this, so the
        rebalancer does not also overlay those migrations.
        """
        import yaml
        with open(SAMPLE_POLICIES) as f:
            data = yaml.safe_load(f)
        for p in data['policies'].values():
            p['settle_time'] = 0.001
        self.policies_path = os.path.join(self._workdir, 'settled.yaml')
        with open(self.policies_path, 'w') as f:
            yaml.safe_dump(data, f)
        self.write_conf(**rebalance_options)

    def write_conf(self, **rebalance_options):
        """(Re)write the nova.conf that ``nova-kronos-manage`` reads."""
        opts = dict(self.rebalance_options, **rebalance_options)
        lines = ['[kronos]', 'policies_file = %s' % self.policies_path]
        if self.prom:
            lines += ['[kronos_prometheus]', 'url = %s' % self.prom.url,
                      'timeout = 2', 'retries = 0']
        else:
            lines += ['metric_source = file',
                      'metrics_file = %s' % self.metrics_file]
        lines.append('[kronos_rebalance]')
        # The lock directory (the only local state) lives in the test's
        # temporary directory.
        opts.setdefault('state_dir', os.path.join(self._workdir, 'state'))
        lines += ['%s = %s' % kv for kv in sorted(opts.items())]
        with open(self.conf_path, 'w') as f:
            f.write('\n'.join(lines) + '\n')

    # -- metrics -------------------------------------------------------------

    def synthetic_cloud(self, layout, overhead=None, mem_overhead=None):
        """A :class:`synthetic.SyntheticCloud` of every compute host.

        :param layout: {host: [(server_id, busy_cores, rss_bytes)]}.
        :param overhead: {host: busy cores outside any VM}.
        :param mem_overhead: {host: bytes used outside any VM}.
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
                name=name, cpus=self.metric_host_cpus,
                mem_bytes=self.metric_host_mem,
                overhead_cores=overhead.get(name, 0.0),
                mem_overhead_bytes=mem_overhead.get(name, 0), vms=vms))
        return synthetic.SyntheticCloud(hosts, duration=1800)

    def publish(self, layout, overhead=None, mem_overhead=None):
        """Serve exporter series for ``layout`` (see :meth:`synthetic_cloud`).

        :returns: ``SyntheticCloud.expected()``: exact policy values.
        """
        return self.publish_cloud(
            self.synthetic_cloud(layout, overhead, mem_overhead))

    def publish_cloud(self, cloud):
        """Serve ``cloud``'s series from Prometheus (or the metrics file).

        :returns: ``cloud.expected()``.
        """
        expected = cloud.expected()
        if self.prom:
            self.prom.reset()
            # Samples run 15 min into the future so rate() stays exact for
            # the whole test (Prometheus accepts future samples).
            cloud.load_into(self.prom, now=time.time() + 900)
        else:
            self._write_metrics_file(expected)
        return expected

    def _write_metrics_file(self, expected):
        from nova_kronos.metrics import file as file_source
        policy_set = rebalance.load_policies(self.product_conf())
        results = {}
        for p in policy_set.enabled:
            data = expected[p.name]
            results[p.host_query] = [({p.host_label: h}, v)
                                     for h, v in data['hosts'].items()]
            results[p.vm_query] = [({p.vm_label: u}, v)
                                   for u, v in data['vms'].items()]
        file_source.write(self.metrics_file, results)

    def publish_host_loads(self, cpu, memory):
        """Serve data giving each host exactly the given loads.

        :param cpu: {host: load}; :param memory: {host: load}.
        """
        overhead = {h: cpu[h] * self.metric_host_cpus for h in cpu}
        mem = {h: int(round(memory[h] * self.metric_host_mem))
               for h in memory}
        return self.publish({}, overhead=overhead, mem_overhead=mem)

    def product_conf(self):
        """The command's nova.conf, parsed as the product parses it."""
        conf = cfg.ConfigOpts()
        kronos_conf.register_opts(conf)
        conf(['--config-file', self.conf_path], project='nova')
        return conf

    def measured_loads(self, hosts=None):
        """Host loads read back through the product's metric source.

        :returns: ``({policy: {host: load}}, exclusions)``.
        """
        conf = self.product_conf()
        policy_set = rebalance.load_policies(conf)
        source = metrics.load_source(conf.kronos.metric_source, conf)
        snap = source.collect(policy_set, hosts=hosts or self.compute_hosts,
                              vms=False)
        return ({name: dict(d.hosts) for name, d in snap.data.items()},
                snap.exclusions)

    # -- command -------------------------------------------------------------

    def manage(self, *args):
        """Run ``nova-kronos-manage --config-file <conf> ARGS`` in-process.

        :returns: ``(exit code, stdout, stderr)``.
        """
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', self.conf_path] + list(args),
                           conn=self.conn, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def rebalance(self, *args):
        """``kronos rebalance --format json ARGS``: (code, doc, stderr)."""
        code, out, err = self.manage('kronos', 'rebalance', '--format',
                                     'json', *args)
        return code, (json.loads(out) if out.strip() else None), err

    def hosts_of(self, server_ids):
        return {s: self.host_of(s) for s in server_ids}
