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

"""Run the sample policies' PromQL against a real Prometheus.

A synthetic cloud (known CPU rates and memory) is remote-written into a
private Prometheus server; every host_query / vm_query of
etc/nova-kronos/policies.yaml.sample must return exactly the values the
model predicts, one sample per hypervisor / VM.
"""

import os
import time
import uuid as uuidlib

import prometheus_api_client
import testtools
import yaml

from tests.harness import prometheus as prom
from tests.harness import synthetic

SAMPLE_POLICIES = os.path.join(
    os.path.dirname(__file__), '..', '..',
    'etc', 'nova-kronos', 'policies.yaml.sample')

GiB = 1024 ** 3
TOLERANCE = 1e-9


def _uuid(n):
    return str(uuidlib.UUID(int=n))


def _small_cloud():
    """Four hosts with different cpu counts, one of them empty.

    Domain names are reused on every host, so a join on `domain` alone
    would fail.
    """
    V = synthetic.SyntheticVM
    H = synthetic.SyntheticHost
    return synthetic.SyntheticCloud([
        H('compute1', cpus=8, mem_bytes=32 * GiB, overhead_cores=0.25,
          mem_overhead_bytes=2 * GiB, vms=[
              V(_uuid(1), 'instance-00000001', 2, 1.5, 3 * GiB),
              V(_uuid(2), 'instance-00000002', 4, 0.5, 5 * GiB),
          ]),
        H('compute2', cpus=16, mem_bytes=64 * GiB, overhead_cores=0.5, vms=[
            V(_uuid(3), 'instance-00000001', 8, 6.0, 20 * GiB),
            V(_uuid(4), 'instance-00000002', 1, 0.0, 512 * 1024 ** 2),
            V(_uuid(5), 'instance-00000003', 2, 1.75, 1 * GiB),
        ]),
        H('compute3', cpus=48, mem_bytes=256 * GiB, overhead_cores=1.0,
          mem_overhead_bytes=1 * GiB, vms=[
              V(_uuid(6), 'instance-00000001', 16, 12.3, 100 * GiB),
          ]),
        H('compute4', cpus=4, mem_bytes=8 * GiB),  # empty hypervisor
    ])


def _big_cloud(hosts=12, vms=300):
    return synthetic.round_robin_cloud(hosts, vms)


def _load_policies():
    with open(SAMPLE_POLICIES) as f:
        return yaml.safe_load(f)


class _ServerTestCase(testtools.TestCase):
    """One Prometheus per test class, shared by its tests.

    The server starts with the class's first test (``require_prometheus``
    needs a test to skip, or to fail under CI) and stops after its last.
    """

    server = None

    def setUp(self):
        super().setUp()
        binary = prom.require_prometheus(self)
        cls = type(self)
        if cls.server is None:
            server = prom.PrometheusServer(binary)
            server.start()
            cls.server = server
            try:
                cls.load_class_data()
            except BaseException:
                cls.server = None
                server.stop()
                raise

    @classmethod
    def load_class_data(cls):
        """Hook: load data shared by the class's tests (server is up)."""

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()
            cls.server = None
        super().tearDownClass()

    def query(self, promql, at):
        client = prometheus_api_client.PrometheusConnect(
            self.server.url, disable_ssl=True)
        # Evaluate at the last sample's time so 5m rates are exact no
        # matter how long the test took to get here.
        return client.custom_query(promql, params={'time': at})

    def assertSamples(self, result, label, expected):
        keys = [sample['metric'].get(label) for sample in result]
        self.assertEqual(sorted(expected), sorted(keys),
                         'expected exactly one sample per %s' % label)
        for sample in result:
            key = sample['metric'][label]
            value = float(sample['value'][1])
            self.assertLess(
                abs(value - expected[key]), TOLERANCE,
                '%s=%s: got %r, expected %r'
                % (label, key, value, expected[key]))

    def assertPolicyMatches(self, policy, expected, now):
        """Both queries of ``policy`` return exactly ``expected``."""
        self.assertSamples(self.query(policy['host_query'], now),
                           policy['host_label'], expected['hosts'])
        self.assertSamples(self.query(policy['vm_query'], now),
                           policy['vm_label'], expected['vms'])


class TestSamplePolicies(_ServerTestCase):

    @classmethod
    def load_class_data(cls):
        cls.policies = _load_policies()
        cls.cloud = _small_cloud()
        cls.now = cls.cloud.load_into(cls.server)

    def _check_policy(self, name, cloud, now):
        self.assertPolicyMatches(self.policies['policies'][name],
                                 cloud.expected()[name], now)

    def test_cpu_policy(self):
        self._check_policy('cpu', self.cloud, self.now)

    def test_memory_policy(self):
        self._check_policy('memory', self.cloud, self.now)

    def test_expected_values_are_meaningful(self):
        # Guard against a model bug making the checks above vacuous.
        exp = self.cloud.expected()
        self.assertEqual((0.25 + 1.5 + 0.5) / 8,
                         exp['cpu']['hosts']['compute1'])
        self.assertEqual(6.0 / 16, exp['cpu']['vms'][_uuid(3)])
        self.assertEqual(1 - (32 - 2 - 3 - 5) / 32,
                         exp['memory']['hosts']['compute1'])
        self.assertEqual(0.0, exp['cpu']['hosts']['compute4'])

    def test_sample_policy_schema(self):
        doc = self.policies
        self.assertEqual({'strip_port': True, 'strip_domain': False,
                          'aliases': {}}, doc['host_mapping'])
        enabled = [p for p in doc['policies'].values() if p['enabled']]
        self.assertAlmostEqual(1.0, sum(p['weight'] for p in enabled))
        for policy in doc['policies'].values():
            self.assertIn(policy['mode'], ('spread', 'pack'))
            self.assertTrue(0 <= policy['threshold'] <= 1)
            for key in ('host_query', 'host_label', 'vm_query', 'vm_label'):
                self.assertTrue(policy[key])


class TestAfterMigration(_ServerTestCase):
    """Rewriting the data after moves (on a reset server) is reflected."""

    def test_move_and_reload(self):
        policies = _load_policies()['policies']
        cloud = _small_cloud()
        cloud.load_into(self.server)
        # compute3 already has an instance-00000001: rename on arrival.
        cloud.move(_uuid(1), 'compute3', domain='instance-00000007')
        cloud.move(_uuid(5), 'compute4')
        self.server.reset()
        now = cloud.load_into(self.server)
        exp = cloud.expected()
        self.assertEqual(1.5 / 48, exp['cpu']['vms'][_uuid(1)])
        for name in ('cpu', 'memory'):
            self.assertPolicyMatches(policies[name], exp[name], now)


class TestRemoteWrite(_ServerTestCase):
    """protobuf + snappy remote write round-trips exactly."""

    def test_round_trip_exact_value(self):
        now_ms = int(time.time()) * 1000
        value = 0.1 + 0.2  # not representable in short decimal
        odd = 'h\u00e9 "q" \\ \n\u2603'  # quote, backslash, newline, UTF-8
        self.server.remote_write([
            ({'__name__': 'kronos_roundtrip', 'zeta': 'z', 'alpha': odd},
             [(now_ms - 45000, 5e-324), (now_ms - 30000, -1.5e300),
              (now_ms, value)]),
        ])
        result = self.query('kronos_roundtrip', now_ms / 1000)
        self.assertEqual(1, len(result))
        self.assertEqual({'__name__': 'kronos_roundtrip', 'alpha': odd,
                          'zeta': 'z'}, result[0]['metric'])
        self.assertEqual(now_ms / 1000, result[0]['value'][0])
        self.assertEqual(value, float(result[0]['value'][1]))
        # And the older samples, via a range query.
        ranged = self.query('kronos_roundtrip[1m]', now_ms / 1000)
        self.assertEqual([5e-324, -1.5e300, value],
                         [float(v) for _, v in ranged[0]['values']])
        self.assertEqual([now_ms / 1000 - 45, now_ms / 1000 - 30,
                          now_ms / 1000],
                         [t for t, _ in ranged[0]['values']])

    def test_rejected_write_raises(self):
        now_ms = int(time.time()) * 1000
        self.server.remote_write([({'__name__': 'kronos_bounds'},
                                   [(now_ms, 1.0)])])
        # Far older than the head block's 1h append window.
        e = self.assertRaises(
            prom.PrometheusError, self.server.remote_write,
            [({'__name__': 'kronos_bounds'}, [(now_ms - 3 * 3600000, 1.0)])])
        self.assertIn('out of bounds', str(e))


class TestScale(_ServerTestCase):
    """12 hypervisors / 300 VMs: still exact, one sample per host/VM."""

    def test_load_12_hosts_300_vms(self):
        cloud = _big_cloud()
        now = cloud.load_into(self.server)
        policies = _load_policies()['policies']
        exp = cloud.expected()
        for name in ('cpu', 'memory'):
            self.assertPolicyMatches(policies[name], exp[name], now)
