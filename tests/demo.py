"""``nova-kronos-demo``: the whole product on an embedded in-process cloud.

No OpenStack cloud is needed. The demo

1. starts real Nova in-process (Nova's functional harness from the nova
   wheel: API, conductor, scheduler with our weigher and filter, a dozen
   fake-driver computes, the Placement fixture) and boots a few hundred
   servers in a skewed layout, some in an anti-affinity server group;
2. serves their load from a real Prometheus server on 127.0.0.1 (Debian's
   ``prometheus`` binary, fed node_exporter and libvirt-exporter series by
   remote write) or, when the binary is missing, from the file-backed
   metric source, and says which;
3. boots a few new servers without a host and shows the weigher steering
   each to the least loaded host;
4. runs ``nova-kronos-manage kronos rebalance`` as a dry run, then with
   ``--execute`` (real live migrations through openstacksdk), then re-reads
   the metrics and prints per-host loads and the imbalance before and after.
"""

# Keep first: the harness chooses the concurrency mode at import.
from tests.harness import nova_cloud  # noqa: I100  isort:skip

import argparse
import io
import json
import logging
import os
import random
import sys
import time
import unittest

import fixtures
import numpy as np

from nova_kronos.cmd import manage
from nova_kronos.metrics import file as file_source
from nova_kronos import policy as policy_mod
from nova_kronos.scheduler import loads as loads_mod
from nova_kronos import scoring
from tests.harness import prometheus
from tests.harness import synthetic

HERE = os.path.dirname(os.path.abspath(__file__))
GIB = 1 << 30
HOST_CPUS = 16
HOST_MEM_MB = 32768

_OPTIONS = {}
_OUTCOME = {}


def _sample_policies():
    candidates = [
        os.path.join(os.path.dirname(HERE), 'etc', 'nova-kronos',
                     'policies.yaml.sample'),
        os.path.join(sys.prefix, 'etc', 'nova-kronos',
                     'policies.yaml.sample'),
    ]
    for path in candidates:
        if os.path.exists(path):
            return path
    raise SystemExit('policies.yaml.sample not found in %s'
                     % ', '.join(candidates))


def _say(text=''):
    # The terminal's stream, not sys.stdout: Nova's harness captures
    # sys.stdout inside a test when OS_STDOUT_CAPTURE is set (tox sets it).
    out = _OPTIONS.get('stdout') or sys.stdout
    out.write(text + '\n')
    out.flush()


class DemoCloud(nova_cloud.NovaCloudTestCase):
    """The embedded cloud; ``run_demo`` is the demo itself."""

    compute_hosts = tuple('compute%02d' % i for i in range(1, 13))
    host_vcpus = HOST_CPUS
    host_memory_mb = HOST_MEM_MB

    def configure_scheduler(self):
        opts = _OPTIONS
        self._policies_path = _sample_policies()
        self._workdir = self.useFixture(fixtures.TempDir()).path
        binary = (None if opts['no_prometheus']
                  else prometheus.find_prometheus_binary())
        self._prom = None
        if binary:
            self._prom = self.useFixture(prometheus.PrometheusServer(binary))
        self._metrics_file = os.path.join(self._workdir, 'metrics.json')
        loads_mod.reset_shared_cache()
        self.flags(weight_classes=[
            'nova_kronos.scheduler.weights.PrometheusWeigher'],
            available_filters=[
                'nova.scheduler.filters.all_filters',
                'nova_kronos.scheduler.filters.PrometheusFilter'],
            enabled_filters=[
                'ComputeFilter', 'ComputeCapabilitiesFilter',
                'ImagePropertiesFilter', 'ServerGroupAntiAffinityFilter',
                'ServerGroupAffinityFilter', 'PrometheusFilter'],
            group='filter_scheduler')
        self.flags(policies_file=self._policies_path, weigher_cache_ttl=0,
                   failure_backoff=0, group='kronos')
        if self._prom:
            self.flags(url=self._prom.url, group='kronos_prometheus')
        else:
            self.flags(metric_source='file', metrics_file=self._metrics_file,
                       group='kronos')

    # -- metrics -----------------------------------------------------------

    def _publish(self):
        """Serve the synthetic cloud's series; return exact policy values."""
        expected = self._cloud.expected()
        if self._prom:
            self._prom.reset()
            self._cloud.load_into(self._prom, now=time.time() + 900)
        else:
            results = {}
            for p in self._policy_set.enabled:
                data = expected[p.name]
                results[p.host_query] = [({p.host_label: h}, v)
                                         for h, v in data['hosts'].items()]
                results[p.vm_query] = [({p.vm_label: u}, v)
                                       for u, v in data['vms'].items()]
            file_source.write(self._metrics_file, results)
        return expected

    def _vm(self, server_id):
        self._domains += 1
        busy = self._rng.uniform(0.05, 0.35)
        rss = int(self._rng.uniform(0.25, 0.5) * GIB)
        return synthetic.SyntheticVM(uuid=server_id,
                                     domain='instance-%08x' % self._domains,
                                     vcpus=1, busy_cores=busy, rss_bytes=rss)

    def _loads_table(self, expected, title):
        names = list(self.compute_hosts)
        _say(title)
        _say('  %-10s %8s %8s %8s' % ('host', 'servers', 'cpu', 'memory'))
        counts = {h: len(self._cloud.host(h).vms) for h in names}
        for h in names:
            _say('  %-10s %8d %8.3f %8.3f' % (
                h, counts[h], expected['cpu']['hosts'][h],
                expected['memory']['hosts'][h]))
        return self._imbalance(expected)

    def _imbalance(self, expected):
        names = list(self.compute_hosts)
        pols = self._policy_set.enabled
        table = [[expected[p.name]['hosts'][h] for h in names] for p in pols]
        return scoring.imbalance(np.array(table), [p.weight for p in pols])

    def _favoured(self, expected):
        names = list(self.compute_hosts)
        pols = self._policy_set.enabled
        weights = scoring.host_weights(
            [[expected[p.name]['hosts'][h] for h in names] for p in pols],
            [p.mode for p in pols], [p.weight for p in pols],
            [p.threshold for p in pols])
        return names[int(np.argmax(weights))]

    def _manage(self, *args):
        conf = os.path.join(self._workdir, 'nova.conf')
        with open(conf, 'w') as f:
            f.write('[kronos]\npolicies_file = %s\n' % self._policies_path)
            if self._prom:
                f.write('[kronos_prometheus]\nurl = %s\n' % self._prom.url)
            else:
                f.write('metric_source = file\nmetrics_file = %s\n'
                        % self._metrics_file)
            f.write('[kronos_rebalance]\npoll_interval = 0.2\n'
                    'min_improvement = 0.001\n')
        out, err = io.StringIO(), io.StringIO()
        argv = ['--config-file', conf, 'kronos', 'rebalance'] + list(args)
        _say('$ nova-kronos-manage %s' % ' '.join(argv[2:]))
        code = manage.main(argv, conn=self._conn, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    # -- the demo ------------------------------------------------------------

    def run_demo(self):
        opts = _OPTIONS
        started = time.time()
        # Runs first among cleanups: keep the harness teardown quiet.
        self.addCleanup(logging.getLogger('nova').setLevel, logging.WARNING)
        self._rng = random.Random(opts['seed'])
        self._domains = 0
        self._policy_set = policy_mod.load_file(self._policies_path)
        self._conn = self.sdk_connection()
        hosts = list(self.compute_hosts)
        self.create_aggregate('demo-agg', hosts, availability_zone='az1')
        _say('Embedded Nova %s: %d fake hypervisors (%d vCPU, %d MB each) '
             'in aggregate demo-agg, availability zone az1.' % (
                 'cloud', len(hosts), HOST_CPUS, HOST_MEM_MB))
        if self._prom:
            _say('Metrics: real Prometheus at %s (node_exporter + libvirt '
                 'exporter series by remote write).' % self._prom.url)
        else:
            _say('Metrics: prometheus binary not found (or --no-prometheus);'
                 ' using the file-backed metric source %s.'
                 % self._metrics_file)

        # Skewed layout: the first third of the hosts carry most servers.
        total = opts['servers']
        hot = hosts[:max(1, len(hosts) // 3)]
        n_hot = int(total * 0.6)
        per_host = {h: 0 for h in hosts}
        for i in range(n_hot):
            per_host[hot[i % len(hot)]] += 1
        cold = hosts[len(hot):]
        for i in range(total - n_hot):
            per_host[cold[i % len(cold)]] += 1
        group = self.create_server_group('demo-anti', 'anti-affinity')
        t0 = time.time()
        booted = {}
        for i, h in enumerate(hosts):
            count = per_host[h]
            # One anti-affinity member on each of the first 4 hosts.
            if i < 4:
                booted.setdefault(h, []).extend(self.boot_servers(
                    h, 1, group_id=group['id'], name_prefix='anti-%d' % i))
                count -= 1
            if count > 0:
                booted.setdefault(h, []).extend(self.boot_servers(
                    h, count, name_prefix='vm-%s' % h))
        _say('Booted %d servers in %.1f s (4 in anti-affinity group '
             'demo-anti).' % (total, time.time() - t0))
        self._cloud = synthetic.SyntheticCloud(
            [synthetic.SyntheticHost(
                name=h, cpus=HOST_CPUS, mem_bytes=HOST_MEM_MB << 20,
                overhead_cores=0.5, mem_overhead_bytes=2 * GIB,
                vms=[self._vm(s['id']) for s in booted.get(h, ())])
             for h in hosts], duration=1800)
        expected = self._publish()
        imb0 = self._loads_table(expected, '\nPer-host load (from metrics):')
        _say('Combined imbalance: %.4f\n' % imb0)

        _say('The weigher steers new boots (no host given):')
        for i in range(opts['boots']):
            server = self._create_server(name='new-%d' % i, networks='none',
                                         az='az1')
            host = server['OS-EXT-SRV-ATTR:host']
            _say('  new-%d -> %s (the policies favour %s)'
                 % (i, host, self._favoured(expected)))
            self._cloud.host(host).vms.append(self._vm(server['id']))
            expected = self._publish()
        imb1 = self._imbalance(expected)

        _say('\nRebalance, dry run:')
        code, out, err = self._manage('--max-migrations',
                                      str(opts['max_migrations']))
        _say(out + err + '(exit code %d)\n' % code)
        if code not in (manage.EXIT_OK, manage.EXIT_WORK_FOUND):
            raise AssertionError('dry run failed (exit %d)' % code)

        _say('Rebalance, execute:')
        code, out, err = self._manage(
            '--execute', '--max-migrations', str(opts['max_migrations']),
            '--format', 'json')
        doc = json.loads(out) if out.strip() else {'moves': [], 'results': []}
        for m, r in zip(doc['moves'], doc['results']):
            _say('  %s %s -> %s: %s' % (m['server_name'], m['source'],
                                        m['destination'], r['status']))
        if err:
            _say(err)
        done = [r for r in doc['results'] if r['status'] == 'succeeded']
        for r in done:
            self._cloud.move(r['server_id'], r['host'])
        landed = sum(1 for m in doc['moves']
                     if self.host_of(m['server_id']) == m['destination'])
        _say('  %d live migrations succeeded; Nova shows %d of %d servers '
             'on their planned host. (exit code %d)'
             % (len(done), landed, len(doc['moves']), code))
        expected = self._publish()
        imb2 = self._loads_table(expected, '\nPer-host load after rebalance '
                                           '(metrics re-read):')
        members = self._conn.compute.get_server_group(group['id']).member_ids
        member_hosts = [self.host_of(m) for m in members]
        _say('Anti-affinity group demo-anti on hosts: %s (%s)' % (
            ', '.join(member_hosts),
            'intact' if len(set(member_hosts)) == len(member_hosts)
            else 'BROKEN'))
        _say('\nCombined imbalance: %.4f at start, %.4f after the weighed '
             'boots, %.4f after %d migrations.' % (imb0, imb1, imb2,
                                                   len(done)))
        _say('Demo finished in %.1f s.' % (time.time() - started))
        _OUTCOME.update(code=code, imbalance=(imb0, imb1, imb2),
                        migrations=len(done))


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='nova-kronos-demo',
        description='Run nova-kronos end to end on an embedded in-process '
                    'Nova cloud (no OpenStack cloud needed).')
    parser.add_argument('--servers', type=int, default=240,
                        help='servers in the skewed layout (default 240)')
    parser.add_argument('--boots', type=int, default=4,
                        help='new servers booted through the weigher')
    parser.add_argument('--max-migrations', type=int, default=40,
                        help='rebalance migration budget (default 40)')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--no-prometheus', action='store_true',
                        help='use the file-backed metric source even when '
                             'the prometheus binary is installed')
    args = parser.parse_args(argv)
    _OPTIONS.update(vars(args))
    _OPTIONS['stdout'] = sys.stdout
    case = DemoCloud('run_demo')
    result = unittest.TestResult()
    case.run(result)
    problems = result.errors + result.failures
    for _, tb in problems:
        sys.stderr.write(tb + '\n')
    for _, reason in result.skipped:
        sys.stderr.write('skipped: %s\n' % reason)
    if problems or result.skipped:
        return 1
    return 0 if _OUTCOME.get('code') == manage.EXIT_OK else 1


if __name__ == '__main__':
    sys.exit(main())
