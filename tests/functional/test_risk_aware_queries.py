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

"""The risk-aware sample policies against a real Prometheus.

etc/nova-kronos/policies-risk-aware.yaml.sample judges a host by
``avg_over_time(X[30m:1m]) + 2 * stddev_over_time(X[30m:1m])`` clamped into
[0, 1], and a server by ``avg_over_time(share[30m:1m])``. Four synthetic
hypervisors (:class:`tests.harness.synthetic.VaryingCloud`, one sample a
minute) follow patterns whose window values are worked out by hand below:
a steady host and a swinging one with the same mean, a host flipping every
minute (faster than the 5-minute rate: no margin) and one near saturation.
Like the other modules of this package, this one relies on
``tests/functional/__init__.py`` having imported Nova's harness first.
"""

import io
import math
import os
import time
import uuid as uuidlib

import fixtures
import testtools
import yaml

from nova_kronos.cmd import manage
from nova_kronos import policy
from nova_kronos import scoring
from tests.functional import test_prometheus_queries as queries
from tests.functional import test_promql_check as promql_check
from tests.harness import synthetic

ETC = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                   'nova-kronos')
SAMPLE = os.path.join(ETC, 'policies-risk-aware.yaml.sample')
DEFAULT_SAMPLE = os.path.join(ETC, 'policies.yaml.sample')

GiB = 1024 ** 3
TOLERANCE = 1e-9


def _uuid(n):
    return str(uuidlib.UUID(int=n))


STEADY, WAVY_1, WAVY_2, FAST, HOT = (_uuid(n) for n in range(101, 106))

# -- the cloud and its hand-worked values -------------------------------------
#
# Every host has 4 cpus and 16 GiB. Patterns give one value per minute
# (the sample interval), repeated; H5L5 below means 5 minutes at the high
# value, then 5 at the low one (period 10 minutes).
#
# How the sample's cpu query sees a pattern: the last sample is not on a
# whole minute, so the [5m] rate at each whole minute spans 4 whole sample
# intervals and equals their mean; the [30m:1m] subquery has 30 such
# points, three periods of 10, whatever the phase. For H5L5 the 10 windows
# of 4 intervals hold 4, 4, 3, 2, 1, 0, 0, 1, 2, 3 high intervals, so with
# high = m + d and low = m - d the 5-minute rates are
#   m + d * (1, 1, .5, 0, -.5, -1, -1, -.5, 0, .5):
# mean m, population variance d^2 * (1 + 1 + .25 + 0 + .25 + 1 + 1 + .25
# + 0 + .25) / 10 = d^2 / 2, standard deviation d / sqrt(2).
# The memory query reads the gauge itself once a minute: 15 points at m + d
# and 15 at m - d, mean m, standard deviation d.
#
# steady: server STEADY, 2.0 cores, 8 GiB RSS, constant.
#   cpu  X = 2.0 / 4 = 0.5 every minute: mean 0.5, stddev 0 -> 0.5
#   mem  X = 8 / 16 = 0.5: -> 0.5
# wavy: server WAVY_1 1.0 core and 4 GiB constant; WAVY_2 H5L5 of 1.8 / 0.2
#   cores and of 6 / 2 GiB.
#   cpu  per minute (1.0 + 1.8) / 4 = 0.7 or (1.0 + 0.2) / 4 = 0.3:
#        m = 0.5, d = 0.2, stddev = 0.2 / sqrt(2) = 0.1414213562,
#        0.5 + 2 * 0.1414213562 = 0.7828427125
#   mem  (4 + 6) / 16 = 0.625 or (4 + 2) / 16 = 0.375: m = 0.5, d = 0.125,
#        0.5 + 2 * 0.125 = 0.75
#   Same means as steady (0.5), higher risk-aware loads.
# fast: server FAST alternates 3.0 and 1.0 cores every minute, 8 GiB.
#   Each 5-minute rate holds two minutes of each: 2.0 / 4 = 0.5 at every
#   point, stddev 0 -> 0.5, although the host flips between 0.75 and 0.25.
#   mem 8 / 16 -> 0.5.
# hot: server HOT H5L5 of 4.0 / 3.2 cores and of 15.5 / 13 GiB.
#   cpu  1.0 or 0.8: m = 0.9, d = 0.1, 0.9 + 2 * 0.1 / sqrt(2)
#        = 1.0414213562 -> clamp_max -> 1.0
#   mem  15.5 / 16 = 0.96875 or 13 / 16 = 0.8125: m = 0.890625,
#        d = 0.078125, 0.890625 + 2 * 0.078125 = 1.046875 -> 1.0
#
# Server shares are window means only:
#   cpu  STEADY 2.0 / 4 = 0.5; WAVY_1 1.0 / 4 = 0.25; WAVY_2 the mean of
#        its 5-minute rates, (1.8 + 0.2) / 2 = 1.0 core, / 4 = 0.25;
#        FAST (3.0 + 1.0) / 2 / 4 = 0.5; HOT (4.0 + 3.2) / 2 / 4 = 0.9
#   mem  STEADY 8 / 16 = 0.5; WAVY_1 4 / 16 = 0.25; WAVY_2 (6 + 2) / 2 / 16
#        = 0.25; FAST 0.5; HOT (15.5 + 13) / 2 / 16 = 0.890625
#   so wavy's shares sum to its mean, 0.5, not to its risk-aware load: the
#   margin 2 * stddev stays with the host.

HOST_LOADS = {
    'cpu': {'steady': 0.5,
            'wavy': 0.5 + 2 * 0.2 / math.sqrt(2),  # 0.7828427125
            'fast': 0.5,
            'hot': 1.0},
    'memory': {'steady': 0.5, 'wavy': 0.75, 'fast': 0.5, 'hot': 1.0},
}
VM_SHARES = {
    'cpu': {STEADY: 0.5, WAVY_1: 0.25, WAVY_2: 0.25, FAST: 0.5, HOT: 0.9},
    'memory': {STEADY: 0.5, WAVY_1: 0.25, WAVY_2: 0.25, FAST: 0.5,
               HOT: 0.890625},
}


def _h5l5(high, low):
    return (high,) * 5 + (low,) * 5


def _cloud():
    V = synthetic.SyntheticVM
    H = synthetic.SyntheticHost
    # busy_cores / rss_bytes of patterned servers are only their means
    # (the base class checks them); the patterns below drive the series.
    return synthetic.VaryingCloud(
        [H('steady', cpus=4, mem_bytes=16 * GiB, vms=[
            V(STEADY, 'instance-00000001', 4, 2.0, 8 * GiB)]),
         H('wavy', cpus=4, mem_bytes=16 * GiB, vms=[
             V(WAVY_1, 'instance-00000001', 2, 1.0, 4 * GiB),
             V(WAVY_2, 'instance-00000002', 2, 1.0, 4 * GiB)]),
         H('fast', cpus=4, mem_bytes=16 * GiB, vms=[
             V(FAST, 'instance-00000001', 4, 2.0, 8 * GiB)]),
         H('hot', cpus=4, mem_bytes=16 * GiB, vms=[
             V(HOT, 'instance-00000001', 4, 3.6, 14 * GiB)])],
        busy={WAVY_2: _h5l5(1.8, 0.2), FAST: (3.0, 1.0),
              HOT: _h5l5(4.0, 3.2)},
        rss={WAVY_2: _h5l5(6 * GiB, 2 * GiB),
             HOT: _h5l5(int(15.5 * GiB), 13 * GiB)})


def _last_sample_time():
    """Now in whole seconds, moved off a whole minute (see the top)."""
    now = int(time.time())
    return now - 1 if now % 60 == 0 else now


def _sample_doc(path=SAMPLE):
    with open(path) as f:
        return yaml.safe_load(f)


class TestRiskAwareSampleFile(testtools.TestCase):
    """The file itself: valid, same mapping and labels, derived settle."""

    def test_loads_and_validates(self):
        ps = policy.load_file(SAMPLE)
        self.assertEqual(['cpu', 'memory'], [p.name for p in ps.enabled])
        self.assertEqual(['vcpu', 'memory_mb'],
                         [p.resource for p in ps.enabled])
        self.assertEqual([0.6, 0.4], [p.weight for p in ps.enabled])
        for p in ps.enabled:
            # k = 2 and the 30-minute window, twice in every host_query.
            self.assertEqual(1, p.host_query.count('avg_over_time('), p.name)
            self.assertEqual(1, p.host_query.count('stddev_over_time('))
            self.assertEqual(2, p.host_query.count(')[30m:1m]'))
            self.assertIn('+ 2 *', p.host_query)
            self.assertIn('clamp_max(', p.host_query)
            self.assertIn('clamp_min(', p.host_query)
            # Mean only for servers.
            self.assertNotIn('stddev', p.vm_query)
            self.assertEqual(1, p.vm_query.count(')[30m:1m]'))

    def test_same_mapping_and_labels_as_default_sample(self):
        risk, default = _sample_doc(), _sample_doc(DEFAULT_SAMPLE)
        self.assertEqual(default['host_mapping'], risk['host_mapping'])
        self.assertEqual(sorted(default['policies']),
                         sorted(risk['policies']))
        for name, spec in default['policies'].items():
            for key in ('host_label', 'vm_label', 'resource', 'mode',
                        'weight'):
                self.assertEqual(spec[key], risk['policies'][name][key],
                                 '%s.%s' % (name, key))

    def test_settle_time_derived_from_the_windows(self):
        ps = policy.load_file(SAMPLE)
        cpu, memory = ps.get('cpu'), ps.get('memory')
        # No explicit settle_time: the scanner reads the subqueries right.
        self.assertIsNone(cpu.settle_time)
        self.assertIsNone(memory.settle_time)
        # cpu: the 30m window of the subquery plus the 5m rate inside it
        # plus a 60 s scrape: 1800 + 300 + 60 = 2160 s.
        self.assertEqual(2160.0, cpu.settle_seconds(60))
        # memory: a gauge in a 30m window, plus the scrape: 1800 + 60.
        self.assertEqual(1860.0, memory.settle_seconds(60))

    def test_validate_policies_offline(self):
        # --offline: the file only, no Prometheus (port 9 is discard).
        code, out, err = _validate(self, 'http://127.0.0.1:9', '--offline')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertIn(': OK', out)


def _validate(test, url, *args):
    """``nova-kronos-manage kronos validate-policies`` on the sample."""
    tmp = test.useFixture(fixtures.TempDir()).path
    conf = os.path.join(tmp, 'nova.conf')
    with open(conf, 'w') as f:
        f.write('[kronos]\npolicies_file = %s\n[kronos_prometheus]\n'
                'url = %s\ntimeout = 10\nretries = 0\n'
                % (os.path.abspath(SAMPLE), url))
    out, err = io.StringIO(), io.StringIO()
    code = manage.main(['--config-file', conf, 'kronos', 'validate-policies']
                       + list(args), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


class TestRiskAwareQueries(queries._ServerTestCase,
                           promql_check._SourceTestCase):
    """The sample's queries on a real Prometheus, one server per class."""

    @classmethod
    def load_class_data(cls):
        cls.policies = _sample_doc()['policies']
        cls.cloud = _cloud()
        cls.now = cls.cloud.load_into(cls.server, now=_last_sample_time())

    def values(self, name, kind):
        """``{label value: float}`` of one query, evaluated at ``now``."""
        spec = self.policies[name]
        label = spec['%s_label' % kind]
        result = self.query(spec['%s_query' % kind], self.now)
        values = {}
        for sample in result:
            key = sample['metric'][label]
            self.assertNotIn(key, values, 'two samples for %s' % key)
            values[key] = float(sample['value'][1])
        return values

    def assertValues(self, expected, got):
        self.assertEqual(sorted(expected), sorted(got))
        for key, value in expected.items():
            self.assertLess(abs(got[key] - value), TOLERANCE,
                            '%s: got %r, expected %r' % (key, got[key],
                                                         value))

    def test_cpu_host_loads_are_mean_plus_two_stddev(self):
        self.assertValues(HOST_LOADS['cpu'], self.values('cpu', 'host'))

    def test_memory_host_loads_are_mean_plus_two_stddev(self):
        self.assertValues(HOST_LOADS['memory'],
                          self.values('memory', 'host'))

    def test_steady_host_ranks_below_swinging_host_with_same_mean(self):
        for name in ('cpu', 'memory'):
            hosts = self.values(name, 'host')
            shares = self.values(name, 'vm')
            # Equal means: the servers' mean shares add up to 0.5 on both.
            self.assertLess(abs(shares[STEADY] - 0.5), TOLERANCE)
            self.assertLess(abs(shares[WAVY_1] + shares[WAVY_2] - 0.5),
                            TOLERANCE)
            self.assertLess(hosts['steady'] + 0.2, hosts['wavy'], name)
        # And the weigher's spread score prefers the steady host.
        weights = scoring.host_weights(
            [[HOST_LOADS['cpu']['steady'], HOST_LOADS['cpu']['wavy']]],
            ['spread'], [1.0], [0.9])
        self.assertGreater(weights[0], weights[1])

    def test_swings_faster_than_the_rate_window_add_no_margin(self):
        cpu = self.values('cpu', 'host')
        self.assertLess(abs(cpu['fast'] - cpu['steady']), TOLERANCE)

    def test_vm_shares_are_window_means(self):
        for name in ('cpu', 'memory'):
            self.assertValues(VM_SHARES[name], self.values(name, 'vm'))

    def test_host_margin_is_carried_by_no_server(self):
        cpu_hosts, cpu_vms = self.values('cpu', 'host'), self.values('cpu',
                                                                     'vm')
        margin = cpu_hosts['wavy'] - (cpu_vms[WAVY_1] + cpu_vms[WAVY_2])
        # 2 * 0.2 / sqrt(2) = 0.2828427125
        self.assertLess(abs(margin - 0.2828427124746190), TOLERANCE)

    def test_near_saturation_is_clamped_to_one(self):
        for name in ('cpu', 'memory'):
            hosts = self.values(name, 'host')
            # Unclamped, 1.0414 (cpu) and 1.046875 (memory).
            self.assertEqual(1.0, hosts['hot'], name)
            for host, value in hosts.items():
                self.assertTrue(0.0 <= value <= 1.0, '%s %s: %r'
                                % (name, host, value))
            for uuid, value in self.values(name, 'vm').items():
                self.assertTrue(0.0 <= value <= 1.0, '%s %s: %r'
                                % (name, uuid, value))
        # The threshold rule refuses hot although its cpu mean (0.9) is
        # within the 0.9 threshold.
        self.assertFalse(scoring.within_threshold(
            HOST_LOADS['cpu']['hot'], self.policies['cpu']['threshold']))
        self.assertTrue(scoring.within_threshold(
            0.9, self.policies['cpu']['threshold']))

    def test_collect_keeps_every_host(self):
        # The path of the weigher and the rebalancer, at the wall clock:
        # no host is refused as out of range, saturated ones read 1.
        source = self.source(self.server.url)
        snap = source.collect(policy.load_file(SAMPLE))
        self.assertEqual([], snap.exclusions)
        for name in ('cpu', 'memory'):
            hosts = snap.data[name].hosts
            self.assertEqual({'steady', 'wavy', 'fast', 'hot'}, set(hosts))
            self.assertEqual(1.0, hosts['hot'])
            self.assertLess(hosts['steady'], hosts['wavy'])
            self.assertEqual(set(VM_SHARES[name]), set(snap.data[name].vms))

    def test_validate_policies_command(self):
        code, out, err = _validate(self, self.server.url)
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertIn('OK (every query parsed by %s)' % self.server.url, out)
