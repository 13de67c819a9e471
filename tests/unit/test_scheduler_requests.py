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


"""Weigher and filter across requests, through Nova's own handlers.

Bursts (placements added between fetches), one fetch per request, the TTL,
the threshold rule, rebuilds, summarised warnings and bad option values.
Hosts are 8 vCPU / 8192 MB; the flavor 1 vCPU / 1024 MB adds 1/8 = 0.125
to a host's cpu load (the policy's resource is vcpu).
"""

import os

import fixtures
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from nova.tests.unit.scheduler import fakes as nova_fakes
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslo_utils import uuidutils
import testtools

from nova_kronos import conf as kronos_conf
from nova_kronos.constraints import capacity
from nova_kronos.planner import state as state_mod
from nova_kronos.scheduler import filters
from nova_kronos.scheduler import loads
from nova_kronos.scheduler import weights
from tests.unit import fakes

POLICIES = """
policies:
  cpu:
    mode: %(mode)s
    weight: 1.0
    threshold: 0.75
    resource: vcpu
    settle_time: 100
    host_query: cpu_host
    host_label: nodename
    vm_query: cpu_vm
    vm_label: instance_id
"""


class RequestTestBase(testtools.TestCase):

    mode = 'spread'
    host_loads = {'h1': 0.25, 'h2': 0.25, 'h3': 0.25}

    def setUp(self):
        super().setUp()
        objects.register_all()
        self.conf = self.useFixture(
            config_fixture.Config(kronos_conf.CONF)).conf
        self.dir = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(self.dir, 'p.yaml')
        with open(path, 'w') as f:
            f.write(POLICIES % {'mode': self.mode})
        self.conf.set_override('policies_file', path, group='kronos')
        self.conf.set_override('weigher_cache_ttl', 30, group='kronos')
        self.source = fakes.ListSource({'cpu_host': [
            ({'nodename': h}, v) for h, v in self.host_loads.items()]})
        self.clock = fakes.Clock()
        self.cache = loads.HostLoadCache(self.conf, clock=self.clock,
                                         source=self.source)
        self.useFixture(fixtures.MockPatchObject(
            loads, 'shared_cache', side_effect=lambda: self.cache))
        self.hosts = [nova_fakes.FakeHostState(h, h, {
            'aggregates': [], 'vcpus_total': 8, 'vcpus_used': 0,
            'total_usable_ram_mb': 8192, 'free_ram_mb': 8192})
            for h in self.host_loads]

    def spec(self, vcpus=1, memory_mb=1024, rebuild=False):
        spec = objects.RequestSpec(flavor=objects.Flavor(
            vcpus=vcpus, memory_mb=memory_mb, root_gb=0, ephemeral_gb=0,
            swap=0, extra_specs={}), pci_requests=None, numa_topology=None,
            instance_uuid=uuidutils.generate_uuid())
        if rebuild:
            spec.scheduler_hints = {'_nova_check_type': ['rebuild']}
        return spec

    def schedule(self, spec):
        """Filter then weigh as nova-scheduler does; the chosen host."""
        passed = list(nova_filters.HostFilterHandler().get_filtered_objects(
            [filters.PrometheusFilter()], self.hosts, spec, index=0) or [])
        if not passed:
            return None
        weighed = nova_weights.HostWeightHandler().get_weighed_objects(
            [weights.PrometheusWeigher()], passed, spec)
        return weighed[0].obj

    def place(self, spec):
        """Schedule and consume, as nova-scheduler's select_destinations."""
        host = self.schedule(spec)
        host.consume_from_request(spec)
        return host.host


class TestBursts(RequestTestBase):

    def test_burst_on_equal_hosts_round_robins(self):
        order = [self.place(self.spec()) for _ in range(6)]
        # Each placement adds 0.125 to its host: after three, all three
        # hosts are at 0.375 again, so the next three cycle the same way.
        self.assertEqual(order[:3], order[3:])
        self.assertEqual({'h1', 'h2', 'h3'}, set(order[:3]))
        self.assertEqual(1, len(self.source.calls))

    def test_burst_fills_the_coldest_first(self):
        self.source.answers['cpu_host'] = [
            ({'nodename': 'h1'}, 0.0), ({'nodename': 'h2'}, 0.3125),
            ({'nodename': 'h3'}, 0.53125)]
        order = [self.place(self.spec()) for _ in range(6)]
        # Each server adds 0.125 where it lands; the next goes to the lowest
        # load: h1 0 -> 0.125 -> 0.25 -> 0.375 (below h2's 0.3125 until
        # then), h2 0.3125 -> 0.4375, h1 0.375 -> 0.5, h2 0.4375 -> 0.5625.
        self.assertEqual(['h1', 'h1', 'h1', 'h2', 'h1', 'h2'], order)

    def after(self, vcpus=1):
        """Loads after placing ``vcpus`` on each host: [h1, h2, h3]."""
        _, after = loads.loads_after(
            self.cache.get(), self.cache.placements, self.hosts,
            self.spec(vcpus, vcpus * 1024), self.clock())
        return after[0].tolist()

    def test_placements_expire_after_the_settle_time(self):
        self.assertEqual('h1', self.place(self.spec()))
        # Measured 0.25, the placement 1/8 (counted once: the weigher's
        # reservation ends when the HostState shows it), the request 1/8.
        self.assertEqual([0.5, 0.375, 0.375], self.after())
        # Past the policy's settle time (100 s) and a refetch of the same
        # data, the placement no longer counts: Prometheus is taken to show
        # it by now.
        self.clock.now += 101
        self.assertEqual([0.375, 0.375, 0.375], self.after())

    def test_concurrent_request_sees_the_reservation(self):
        # Two requests weighed before nova-scheduler consumes either (it
        # claims in Placement first): the second avoids the first's host.
        first = self.schedule(self.spec())
        second = self.schedule(self.spec())
        self.assertNotEqual(first.host, second.host)
        self.assertEqual([0.5, 0.5, 0.375], self.after())

    def test_weigher_sees_a_reservation_made_after_its_filter_ran(self):
        # Request A is filtered; request B is filtered, weighed and
        # reserved on h1 meanwhile; A's weigher must not reuse its filter's
        # loads, which predate B's reservation.
        a, b = self.spec(), self.spec()
        passed_a = list(filters.PrometheusFilter().filter_all(self.hosts, a))
        self.assertEqual('h1', self.schedule(b).host)
        weighed = nova_weights.HostWeightHandler().get_weighed_objects(
            [weights.PrometheusWeigher()], passed_a, a)
        self.assertNotEqual('h1', weighed[0].obj.host)

    def test_weigher_reuses_the_filters_loads_for_the_same_hosts(self):
        spec = self.spec()
        passed = list(filters.PrometheusFilter().filter_all(self.hosts,
                                                            spec))
        table = self.cache.get(spec)
        self.assertIsNotNone(self.cache.recall_after(spec, table, passed))
        # Another filter after ours dropped a host: computed again.
        self.assertIsNone(self.cache.recall_after(spec, table, passed[1:]))
        self.assertIsNone(self.cache.recall_after(self.spec(), table,
                                                  passed))

    def test_reservation_lapses_when_the_host_never_grows(self):
        self.assertEqual('h1', self.schedule(self.spec()).host)
        self.clock.now += loads.RESERVATION_TIME + 1
        self.assertEqual([0.375, 0.375, 0.375], self.after())

    def test_reservation_of_a_request_weighed_again_is_replaced(self):
        spec = self.spec()
        spec.instance_uuid = 'a1b2c3d4-0000-4000-8000-000000000001'
        self.assertEqual('h1', self.schedule(spec).host)
        # A retry of the same instance: its old reservation goes first, so
        # h1 is empty again and chosen again.
        self.assertEqual('h1', self.schedule(spec).host)
        self.assertEqual([0.5, 0.375, 0.375], self.after())

    def test_rebuild_reserves_nothing(self):
        self.schedule(self.spec(rebuild=True))
        self.assertEqual([0.375, 0.375, 0.375], self.after())

    def test_second_and_third_placement_accumulate(self):
        h1 = self.hosts[0]
        self.after()                     # first sight of every host
        # Measured 0.25, plus 1/8 per server placed, plus the request's own
        # 1/8.
        for expected in (0.5, 0.625, 0.75):
            h1.consume_from_request(self.spec())
            self.clock.now += 1
            _, after = loads.loads_after(
                self.cache.get(), self.cache.placements, self.hosts,
                self.spec(), self.clock())
            self.assertAlmostEqual(expected, after[0, 0])
            self.assertAlmostEqual(0.375, after[0, 1])

    def test_servers_gone_lower_the_load(self):
        h1 = self.hosts[0]
        h1.vcpus_used = 4
        self.after()
        h1.vcpus_used = 2
        self.assertEqual([0.25 - 2 / 8, 0.25, 0.25], self.after(0))

    def test_host_unseen_longer_than_settle_time_is_taken_as_is(self):
        self.after()
        self.hosts[0].vcpus_used = 4
        self.clock.now += 101
        self.assertEqual([0.25, 0.25, 0.25], self.after(0))

    def test_new_servers_are_as_busy_as_the_average_allocated_vcpu(self):
        # 24 vCPUs allocated on each 8-CPU host at a load of 0.25: each
        # allocated vCPU carries 0.25 * 8 / 24 = 1/12 of a CPU, so a 1-vCPU
        # server adds (1/12) / 8 = 1/96, not 1/8.
        for h in self.hosts:
            h.vcpus_used = 24
        self.assertAlmostEqual(0.25 + 1 / 96, self.after()[0])
        # Few vCPUs allocated for the load (0.25 * 8 / 1 = 2 CPUs per
        # vCPU, e.g. load outside servers): at most one CPU per vCPU.
        self.cache.placements = loads.RecentPlacements()
        for h in self.hosts:
            h.vcpus_used = 1
        self.assertAlmostEqual(0.25 + 1 / 8, self.after()[1])

    def test_request_flavor_counts_with_host_size(self):
        self.hosts[1].vcpus_total = 16
        _, after = loads.loads_after(self.cache.get(), self.cache.placements,
                                     self.hosts, self.spec(2), self.clock())
        self.assertEqual([0.5, 0.375, 0.5], after[0].tolist())


class TestOneFetchPerRequest(RequestTestBase):

    def test_filter_and_weigher_share_a_fetch_with_ttl_zero(self):
        self.conf.set_override('weigher_cache_ttl', 0, group='kronos')
        spec = self.spec()
        self.schedule(spec)
        self.assertEqual(1, len(self.source.calls))
        # A multi-create runs filters and weighers again per instance with
        # the same RequestSpec: still the same fetch.
        self.schedule(spec)
        self.assertEqual(1, len(self.source.calls))
        self.schedule(self.spec())
        self.assertEqual(2, len(self.source.calls))

    def test_memo_is_bounded(self):
        self.conf.set_override('weigher_cache_ttl', 0, group='kronos')
        keep = [self.spec() for _ in range(loads.REQUEST_MEMO + 10)]
        for spec in keep:
            self.cache.get(spec)
        self.assertEqual(loads.REQUEST_MEMO, len(self.cache._memo))

    def test_ttl_counts_from_the_end_of_the_fetch(self):
        clock = self.clock

        class Slow(fakes.ListSource):
            def query(self, promql, deadline=None):
                clock.now += 20
                return super().query(promql)

        self.cache._fixed_source = Slow(self.source.answers)
        self.cache.get()
        self.clock.now += 25      # 45 s after the start, 25 after the end
        self.cache.get()
        self.assertEqual(1, len(self.cache._fixed_source.calls))
        self.clock.now += 6
        self.cache.get()
        self.assertEqual(2, len(self.cache._fixed_source.calls))


class TestThresholdRule(RequestTestBase):
    """One rule, ``load after <= threshold``, in filter, weigher, planner."""

    host_loads = {'h1': 0.625, 'h2': 0.75, 'h3': 0.5}

    def test_filter_passes_a_host_landing_exactly_on_the_threshold(self):
        # h1: 0.625 + 1/8 = 0.75 exactly; h2 would be 0.875.
        passed = nova_filters.HostFilterHandler().get_filtered_objects(
            [filters.PrometheusFilter()], self.hosts, self.spec(), index=0)
        self.assertEqual(['h1', 'h3'], [h.host for h in passed])

    def test_planner_allows_a_move_landing_exactly_on_the_threshold(self):
        fl, snap = fakes.build({'h1': ['a'], 'h2': []}, share=0.125)
        ps = fakes.policy_set(threshold=0.75)

        def allowed(h2_load):
            snap.data['cpu'].hosts['h2'] = h2_load
            st = state_mod.PlanningState(
                fl, ps.enabled, {p: d.hosts for p, d in snap.data.items()},
                {p: d.vms for p, d in snap.data.items()}, ['h1', 'h2'],
                ['a'])
            return bool(capacity.under_threshold(st, [0], [1])[0, 0])

        self.assertTrue(allowed(0.625))      # 0.625 + 0.125 = 0.75
        self.assertFalse(allowed(0.6875))    # 0.8125


class TestPackThreshold(RequestTestBase):

    mode = 'pack'
    host_loads = {'h1': 0.625, 'h2': 0.75, 'h3': 0.5}

    def test_pack_weigher_scores_a_host_landing_on_the_threshold(self):
        weighed = nova_weights.HostWeightHandler().get_weighed_objects(
            [weights.PrometheusWeigher()], self.hosts, self.spec())
        got = {w.obj.host: w.weight for w in weighed}
        # h1 lands on 0.75 (allowed: scored by its load), h2 on 0.875
        # (above: 0), h3 on 0.625.
        self.assertEqual({'h1': 50 * 0.75, 'h2': 0.0, 'h3': 50 * 0.625},
                         got)


class TestRebuild(RequestTestBase):

    host_loads = {'h1': 0.9, 'h2': 0.25, 'h3': 0.25}

    def test_rebuild_passes_a_host_above_threshold(self):
        handler = nova_filters.HostFilterHandler()
        passed = handler.get_filtered_objects(
            [filters.PrometheusFilter()], self.hosts, self.spec(), index=0)
        self.assertNotIn('h1', [h.host for h in passed])
        passed = handler.get_filtered_objects(
            [filters.PrometheusFilter()], self.hosts[:1],
            self.spec(rebuild=True), index=0)
        self.assertEqual(['h1'], [h.host for h in passed])


class TestSampleWarnings(RequestTestBase):

    def test_unusable_samples_warned_once_per_fetch_in_summary(self):
        self.conf.set_override('weigher_cache_ttl', 0, group='kronos')
        self.source.answers['cpu_host'] = [
            ({'nodename': 'n%04d' % i}, float('nan')) for i in range(1000)]
        log = self.useFixture(fixtures.FakeLogger())
        self.schedule(self.spec())
        lines = [line for line in log.output.splitlines() if line]
        self.assertEqual(1, len(lines), lines)
        self.assertIn('cpu: 1000 host sample(s) unusable, e.g. n0000 '
                      '(value is not a number), n0001', lines[0])
        self.assertNotIn('n0003', lines[0])

    def test_empty_result_warns(self):
        self.source.answers['cpu_host'] = []
        log = self.useFixture(fixtures.FakeLogger())
        self.schedule(self.spec())
        self.assertIn('cpu: the host_query returned no sample', log.output)


class TestBadOptionValues(RequestTestBase):
    """Every option the scheduler reads, invalid in nova.conf."""

    BAD = {
        'kronos': {
            'weigher_cache_ttl': '-1', 'weight_multiplier': 'abc',
            'fetch_timeout': 'soon', 'failure_backoff': 'nan',
            'filter_fail_open': 'maybe', 'log_interval': '-5',
        },
        'kronos_prometheus': {
            'url': 'ftp://nowhere', 'timeout': '0', 'retries': 'x',
            'insecure': 'perhaps', 'scrape_interval': 'inf',
        },
    }

    def load_conf(self, bad):
        lines = []
        for group, opts in bad.items():
            lines.append('[%s]' % group)
            lines += ['%s = %s' % kv for kv in opts.items()]
        path = os.path.join(self.dir, 'nova.conf')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        for group, opts in bad.items():
            for name in opts:
                self.conf.clear_override(name, group=group)
        self.conf(['--config-file', path], project='nova')

    def test_each_bad_value_gives_the_default_and_one_warning(self):
        for group, opts in self.BAD.items():
            for name, value in opts.items():
                self.load_conf({group: {name: value}})
                self.cache = loads.HostLoadCache(
                    self.conf, clock=self.clock, source=self.source)
                log = self.useFixture(fixtures.FakeLogger())
                host = self.schedule(self.spec())
                self.assertIsNotNone(host, name)
                self.schedule(self.spec())
                warned = [line for line in log.output.splitlines()
                          if '[%s] %s is invalid' % (group, name) in line]
                self.assertEqual(1, len(warned), (name, log.output))
                opt = self.conf._get_opt_info(name, group)['opt']
                self.assertIn('using its default %r' % opt.default,
                              warned[0])

    def test_all_bad_at_once_still_schedules_by_load(self):
        self.load_conf(self.BAD)
        self.cache = loads.HostLoadCache(self.conf, clock=self.clock,
                                         source=self.source)
        self.source.answers['cpu_host'][0] = ({'nodename': 'h1'}, 0.5)
        self.assertEqual('h2', self.schedule(self.spec()).host)
        settings = self.cache.settings
        self.assertEqual(50.0, settings.kronos.weight_multiplier)
        self.assertEqual(30.0, settings.kronos.weigher_cache_ttl)
        self.assertTrue(settings.kronos.filter_fail_open)
        self.assertEqual('http://127.0.0.1:9090',
                         settings.kronos_prometheus.url)

    def test_secret_values_are_never_quoted(self):
        # url is secret (it may hold credentials); oslo.config's own error
        # would quote the value.
        self.load_conf({'kronos_prometheus': {
            'url': 'gopher://admin:hunter2@prom.example.org'}})
        log = self.useFixture(fixtures.FakeLogger())
        self.assertIsNotNone(self.schedule(self.spec()))
        self.assertIn('[kronos_prometheus] url is invalid (not valid)',
                      log.output)
        self.assertNotIn('hunter2', log.output)


class TestOptionList(testtools.TestCase):

    def test_bad_values_cover_every_option_the_scheduler_reads(self):
        names = {(g, o.dest) for g, opts in loads.settings_mod.GROUPS
                 for o in opts}
        strings = {(g, o.dest) for g, opts in loads.settings_mod.GROUPS
                   for o in opts if type(o) is cfg.StrOpt}
        covered = {(g, n) for g, opts in TestBadOptionValues.BAD.items()
                   for n in opts}
        # Plain strings (paths, names, credentials) cannot be invalid by
        # type; every other option has a bad value in the test.
        self.assertEqual(names - strings, covered)
