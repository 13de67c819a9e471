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


"""The demo: nova-kronos end to end on an embedded in-process cloud.

Run it with ``tox -e demo`` (or ``python -m tests.demo`` in an environment
with the test requirements). No OpenStack cloud is needed. The demo

1. starts real Nova in-process (Nova's functional harness from the nova
   wheel: API, conductor, scheduler with our weigher and filter, a dozen
   fake-driver computes, the Placement fixture) through the same harness
   as the functional tests, and boots a few hundred servers in a skewed
   layout, some in an anti-affinity server group;
2. serves their load from a real Prometheus server on 127.0.0.1 (Debian's
   ``prometheus`` binary, fed node_exporter and libvirt-exporter series)
   or, when the binary is missing, from the file-backed metric source, and
   says which;
3. boots a few new servers without a host and shows where the weigher
   sent each one;
4. runs the rebalance use case (what ``nova-kronos-manage kronos
   rebalance`` runs) as a dry run, then with ``execute`` (real live
   migrations through openstacksdk).

Every figure it prints is measured: server placement is read back from
Nova, host loads are read back through the product's metric source (the
real Prometheus), and the imbalance is computed from those loads.
"""

# Keep first: the harness chooses the concurrency mode at import.
from tests.harness import kronos_cloud  # noqa: I100  isort:skip

import argparse
import logging
import random
import sys
import time
import unittest

import numpy as np

from nova_kronos.cmd import manage
from nova_kronos import rebalance
from nova_kronos import scoring
from tests.harness import prometheus

GIB = kronos_cloud.GIB
HOST_CPUS = 16
HOST_MEM_MB = 32768

_OPTIONS = {}
_OUTCOME = {}


def _terminal():
    # The stream main() was given, not sys.stdout: Nova's harness captures
    # sys.stdout inside a test when OS_STDOUT_CAPTURE is set (tox sets it).
    return _OPTIONS.get('stdout') or sys.stdout


def _say(text=''):
    out = _terminal()
    out.write(text + '\n')
    out.flush()


class DemoCloud(kronos_cloud.KronosCloudTestCase):
    """The embedded cloud; ``run_demo`` is the demo itself."""

    compute_hosts = tuple('compute%02d' % i for i in range(1, 13))
    host_vcpus = HOST_CPUS
    host_memory_mb = HOST_MEM_MB
    aggregate_name = 'demo-agg'
    availability_zone = 'az1'

    def configure_scheduler(self):
        super().configure_scheduler()
        # The in-process computes share one "live_migration" thread pool of
        # max_concurrent_live_migrations workers (1 per compute in Nova's
        # default): one worker per compute, as separate computes would have.
        self.flags(max_concurrent_live_migrations=len(self.compute_hosts))

    def setUp(self):
        # run_demo quiets the 'nova' logger for the harness teardown; put
        # its level back once everything is torn down, so later tests in
        # the same process (tests/functional/test_demo.py runs the demo
        # inside a stestr worker) still capture Nova's INFO lines.
        nova_log = logging.getLogger('nova')
        self.addCleanup(nova_log.setLevel, nova_log.level)
        super().setUp()

    # -- the synthetic workload, keyed by server -----------------------------

    def _profile(self, server_id):
        """A fixed (busy cores, RSS bytes) per server, drawn once."""
        if server_id not in self._profiles:
            self._profiles[server_id] = (
                self._rng.uniform(0.05, 0.35),
                int(self._rng.uniform(0.25, 0.5) * GIB))
        return self._profiles[server_id]

    def _nova_layout(self):
        """{host: [server ids]} as Nova's API reports it now."""
        layout = {h: [] for h in self.compute_hosts}
        for s in self.conn.compute.servers(details=True, all_projects=True):
            layout.setdefault(s.compute_host, []).append(s.id)
        return layout

    def _publish_nova_layout(self):
        """Serve every server's workload where Nova says it runs.

        Then read the loads back through the product's metric source.
        """
        layout = self._nova_layout()
        self.publish({h: [(sid,) + self._profile(sid) for sid in sorted(ids)]
                      for h, ids in layout.items()})
        loads, exclusions = self.measured_loads()
        if exclusions:
            raise AssertionError('metric source left hosts out: %s'
                                 % exclusions)
        return layout, loads

    # -- figures from measured loads -----------------------------------------

    def _imbalance(self, loads):
        names = list(self.compute_hosts)
        pols = self._policy_set.enabled
        table = [[loads[p.name][h] for h in names] for p in pols]
        return scoring.imbalance(np.array(table), [p.weight for p in pols])

    def _favoured(self, loads):
        names = list(self.compute_hosts)
        pols = self._policy_set.enabled
        weights = scoring.host_weights(
            [[loads[p.name][h] for h in names] for p in pols],
            [p.mode for p in pols], [p.weight for p in pols],
            [p.threshold for p in pols])
        return names[int(np.argmax(weights))]

    def _loads_table(self, title, layout, loads):
        _say(title)
        _say('  %-10s %8s %8s %8s' % ('host', 'servers', 'cpu', 'memory'))
        for h in self.compute_hosts:
            _say('  %-10s %8d %8.3f %8.3f' % (
                h, len(layout.get(h, ())), loads['cpu'][h],
                loads['memory'][h]))
        return self._imbalance(loads)

    # -- the demo ------------------------------------------------------------

    def run_demo(self):
        opts = _OPTIONS
        started = time.time()
        # Runs first among cleanups: keep the harness teardown quiet.
        self.addCleanup(logging.getLogger('nova').setLevel, logging.WARNING)
        self._rng = random.Random(opts['seed'])
        self._profiles = {}
        conf = self.product_conf()
        self._policy_set = rebalance.load_policies(conf)
        hosts = list(self.compute_hosts)
        _say('Embedded Nova cloud: %d fake hypervisors (%d vCPU, %d MB '
             'each) in aggregate %s, availability zone %s.' % (
                 len(hosts), HOST_CPUS, HOST_MEM_MB, self.aggregate_name,
                 self.availability_zone))
        if self.prom:
            _say('Metrics: real Prometheus at %s (node_exporter + libvirt '
                 'exporter series by remote write).' % self.prom.url)
        else:
            _say('Metrics: prometheus binary not found (or --no-prometheus);'
                 ' using the file-backed metric source %s.'
                 % self.metrics_file)

        # Skewed layout: the first third of the hosts carry most servers.
        total = opts['servers']
        hot = hosts[:max(1, len(hosts) // 3)]
        cold = hosts[len(hot):]
        n_hot = int(total * 0.6)
        per_host = {h: 0 for h in hosts}
        for i in range(n_hot):
            per_host[hot[i % len(hot)]] += 1
        for i in range(total - n_hot):
            per_host[cold[i % len(cold)]] += 1
        group = self.create_server_group('demo-anti', 'anti-affinity')
        t0 = time.time()
        for i, h in enumerate(hosts):
            count = per_host[h]
            # One anti-affinity member on each of the first 4 hosts.
            if i < 4:
                self.boot_servers(h, 1, group_id=group['id'],
                                  name_prefix='anti-%d' % i)
                count -= 1
            if count > 0:
                self.boot_servers(h, count, name_prefix='vm-%s' % h)
        _say('Booted %d servers in %.1f s (4 in anti-affinity group '
             'demo-anti).' % (total, time.time() - t0))
        layout, loads = self._publish_nova_layout()
        imb0 = self._loads_table('\nPer-host load (read from the metric '
                                 'source):', layout, loads)
        _say('Combined imbalance: %.4f\n' % imb0)

        _say('The weigher places new boots (no host given):')
        for i in range(opts['boots']):
            favoured = self._favoured(loads)
            server = self._create_server(name='new-%d' % i, networks='none',
                                         az=self.availability_zone)
            _say('  new-%d -> %s (the measured loads favour %s)'
                 % (i, server['OS-EXT-SRV-ATTR:host'], favoured))
            layout, loads = self._publish_nova_layout()
        imb1 = self._imbalance(loads)

        budget = opts['max_migrations']
        level = opts['aggressiveness']
        flags = '--max-migrations %d%s' % (
            budget, ' --aggressiveness %d' % level if level else '')
        _say('\nRebalance, dry run (nova-kronos-manage kronos rebalance '
             '%s):' % flags)
        outcome = rebalance.run(
            conf, rebalance.Request.from_conf(conf, max_migrations=budget,
                                              aggressiveness=level),
            conn=self.conn)
        manage.render_table(outcome, _terminal())
        predicted = outcome.plan.aggregates[0].imbalance_after

        parallel = opts['max_parallel']
        conf.set_override('max_parallel', parallel, 'kronos_rebalance')
        _say('\nRebalance, execute (... --execute %s --max-parallel %d):'
             % (flags, parallel))
        t0 = time.time()
        outcome = rebalance.run(
            conf, rebalance.Request.from_conf(
                conf, max_migrations=budget, execute=True,
                aggressiveness=level), conn=self.conn)
        took = time.time() - t0
        results = outcome.results or []
        for r in results:
            _say('  %s %s -> %s: %s' % (r.move.server_name, r.move.source,
                                        r.move.destination, r.status))
        _say('  %d live migration(s) in %.1f s of wall time, at most %d at '
             'once (%d round(s) of planning).'
             % (len(results), took, parallel, len(outcome.plans)))
        layout, loads = self._publish_nova_layout()
        where = {sid: h for h, ids in layout.items() for sid in ids}
        landed = sum(1 for r in results
                     if where.get(r.move.server_id) == r.move.destination)
        done = sum(1 for r in results if r.status == 'succeeded')
        _say('  %d of %d live migrations succeeded; Nova shows %d of %d '
             'servers on their planned host.'
             % (done, len(results), landed, len(results)))
        imb2 = self._loads_table('\nPer-host load after rebalance (read '
                                 'back from the metric source):', layout,
                                 loads)
        members = self.conn.compute.get_server_group(group['id']).member_ids
        member_hosts = [where[m] for m in members]
        _say('Anti-affinity group demo-anti on hosts: %s (%s)' % (
            ', '.join(member_hosts),
            'intact' if len(set(member_hosts)) == len(member_hosts)
            else 'BROKEN'))
        _say('\nCombined imbalance, measured: %.4f at start, %.4f after the '
             'weighed boots, %.4f after %d migrations (the dry run '
             'predicted %.4f).' % (imb0, imb1, imb2, done, predicted))
        _say('Demo finished in %.1f s.' % (time.time() - started))
        _OUTCOME.update(code=manage.exit_code(outcome),
                        imbalance=(imb0, imb1, imb2), migrations=done)


def main(argv=None, stdout=None):
    """Run the demo; returns 0 when every step and every migration succeeded.

    :param stdout: where the demo prints (default: ``sys.stdout``).
    """
    parser = argparse.ArgumentParser(
        prog='python -m tests.demo',
        description='Run nova-kronos end to end on an embedded in-process '
                    'Nova cloud (no OpenStack cloud needed).')
    parser.add_argument('--servers', type=int, default=240,
                        help='servers in the skewed layout (default 240)')
    parser.add_argument('--boots', type=int, default=4,
                        help='new servers placed by the weigher (default 4)')
    parser.add_argument('--max-migrations', type=int, default=40,
                        help='rebalance migration budget (default 40)')
    parser.add_argument('--aggressiveness', type=int, choices=range(1, 6),
                        help='rebalance aggressiveness, 1-5 (default: '
                             "[kronos_rebalance] aggressiveness, 3)")
    parser.add_argument('--max-parallel', type=int, default=2,
                        help='live migrations at once, one per host '
                             '(default 2, as [kronos_rebalance] '
                             'max_parallel)')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--no-prometheus', action='store_true',
                        help='use the file-backed metric source even when '
                             'the prometheus binary is installed')
    args = parser.parse_args(argv)
    _OPTIONS.update(vars(args))
    _OPTIONS['stdout'] = stdout or sys.stdout
    DemoCloud.use_prometheus = (not args.no_prometheus
                                and prometheus.find_prometheus_binary()
                                is not None)
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
