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


"""Weigher, filter and the shared load cache, with Nova's own handler."""

import fixtures
from nova import objects
from nova.scheduler import weights as nova_weights
from nova.tests.unit.scheduler import fakes as nova_fakes
from oslo_config import fixture as config_fixture
import testtools

from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos.scheduler import filters
from nova_kronos.scheduler import loads
from nova_kronos.scheduler import weights
from tests.unit import fakes

POLICIES = """
policies:
  cpu:
    mode: %s
    weight: 1.0
    threshold: 0.8
    host_query: cpu_host
    host_label: nodename
    vm_query: cpu_vm
    vm_label: instance_id
"""


class SchedulerTestBase(testtools.TestCase):

    mode = 'spread'

    def setUp(self):
        super().setUp()
        objects.register_all()
        self.conf = self.useFixture(
            config_fixture.Config(kronos_conf.CONF)).conf
        path = self.useFixture(fixtures.TempDir()).path + '/p.yaml'
        with open(path, 'w') as f:
            f.write(POLICIES % self.mode)
        self.conf.set_override('policies_file', path, group='kronos')
        self.conf.set_override('weigher_cache_ttl', 30, group='kronos')
        # Weights as the handler sums them are the scores themselves.
        self.conf.set_override('weight_multiplier', 1.0, group='kronos')
        self.source = fakes.ListSource({'cpu_host': [
            ({'nodename': 'h1'}, 0.1), ({'nodename': 'h2'}, 0.6),
            ({'nodename': 'h3'}, 0.9)]})
        self.clock = fakes.Clock()
        self.cache = loads.HostLoadCache(self.conf, clock=self.clock,
                                         source=self.source)
        self.useFixture(fixtures.MockPatchObject(
            loads, 'shared_cache', return_value=self.cache))
        self.hosts = [nova_fakes.FakeHostState(h, h, {'aggregates': []})
                      for h in ('h1', 'h2', 'h3', 'h4')]

    def weigh(self):
        handler = nova_weights.HostWeightHandler()
        weighed = handler.get_weighed_objects(
            [weights.PrometheusWeigher()], self.hosts, None)
        return [(w.obj.host, w.weight) for w in weighed]


class TestWeigherSpread(SchedulerTestBase):

    def test_least_loaded_host_first_and_unknown_host_neutral(self):
        result = self.weigh()
        self.assertEqual(['h1', 'h4', 'h2', 'h3'], [h for h, _ in result])
        # minval/maxval fixed to [0, 1]: no per-request magnification.
        self.assertAlmostEqual(0.9, dict(result)['h1'])
        self.assertAlmostEqual(0.5, dict(result)['h4'])

    def test_one_fetch_per_ttl(self):
        self.weigh()
        self.weigh()
        self.assertEqual(1, len(self.source.calls))
        self.clock.now += 31
        self.weigh()
        self.assertEqual(2, len(self.source.calls))

    def test_prometheus_down_gives_neutral_weights_and_one_warning(self):
        self.source.answers = metrics.MetricsError('connection refused')
        log = self.useFixture(fixtures.FakeLogger())
        result = self.weigh()
        self.assertEqual({0.5}, {w for _, w in result})
        self.clock.now += 31
        self.weigh()
        self.assertEqual(1, log.output.count('connection refused'))
        self.clock.now += 61
        self.weigh()
        self.assertEqual(2, log.output.count('connection refused'))

    def test_failure_backoff(self):
        self.conf.set_override('weigher_cache_ttl', 0, group='kronos')
        self.conf.set_override('failure_backoff', 10, group='kronos')
        self.source.answers = metrics.MetricsError('timed out')
        self.weigh()
        self.clock.now += 5
        self.weigh()
        self.assertEqual(1, len(self.source.calls))
        self.clock.now += 6
        self.weigh()
        self.assertEqual(2, len(self.source.calls))

    def test_concurrent_caller_does_not_wait_for_a_fetch(self):
        self.assertIsNotNone(self.cache.get())
        self.clock.now += 31
        self.cache._lock.acquire()  # another request is fetching
        try:
            table = self.cache.get()
        finally:
            self.cache._lock.release()
        self.assertIsNotNone(table)
        self.assertEqual(1, len(self.source.calls))

    def test_unexpected_error_never_raises(self):
        self.source.answers = RuntimeError('boom')
        self.assertEqual({0.5}, {w for _, w in self.weigh()})

    def test_bad_policies_file_gives_neutral_weights(self):
        with open(self.conf.kronos.policies_file, 'w') as f:
            f.write('policies: {cpu: {mode: nope}}\n')
        self.assertEqual({0.5}, {w for _, w in self.weigh()})

    def test_aggregate_multiplier_override(self):
        agg = objects.Aggregate(id=1, name='a', hosts=['h3'],
                                metadata={'kronos_weight_multiplier': '-1'})
        self.hosts[2].aggregates = [agg]
        w = weights.PrometheusWeigher()
        self.assertEqual(-1.0, w.weight_multiplier(self.hosts[2]))
        self.assertEqual(1.0, w.weight_multiplier(self.hosts[0]))


class TestWeigherPack(SchedulerTestBase):

    mode = 'pack'

    def test_fullest_host_under_threshold_first(self):
        order = [h for h, _ in self.weigh()]
        self.assertEqual('h2', order[0])
        self.assertEqual('h3', order[-1])


class TestFilter(SchedulerTestBase):

    def passing(self):
        return [h.host for h in filters.PrometheusFilter().filter_all(
            self.hosts, objects.RequestSpec())]

    def test_rejects_host_above_threshold_only(self):
        self.assertEqual(['h1', 'h2', 'h4'], self.passing())

    def test_fail_open_by_default(self):
        self.source.answers = metrics.MetricsError('down')
        self.assertEqual(['h1', 'h2', 'h3', 'h4'], self.passing())

    def test_fail_closed(self):
        self.conf.set_override('filter_fail_open', False, group='kronos')
        self.source.answers = metrics.MetricsError('down')
        self.assertEqual([], self.passing())
