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

"""Nova's rules as the planner's oracle, against real Nova.

On heterogeneous in-process clouds (:mod:`tests.harness.hetero`: isolation
aggregate + flavor extra specs, image architecture, aggregate image
isolation, a required trait in Placement, PCI devices, a nested custom
resource):

* the oracle's verdict for every (server, host) pair equals Nova's own
  answer to a real live migration (a disagreement fails with every pair
  listed);
* rebalance plans no move Nova refuses where a plan without the oracle
  does, ``--execute`` has no refusal, and the loads measured afterwards
  are the ones the plan predicted.
"""

from tests.harness import hetero  # noqa: I100  isort:skip

import fixtures
from nova import context as nova_context

from nova_kronos.cloud import executor
from nova_kronos.cloud import inventory
from nova_kronos.cloud import nova_rules
from nova_kronos.cmd import manage

GIB = 1 << 30


class _Helpers:

    def fleet(self):
        return inventory.read_fleet(self.conn, aggregates=['agg1'])

    def compare(self, oracle, fleet, servers, ground_truth):
        """Oracle verdicts vs ``ground_truth`` {(server, host): bool}."""
        disagree = []
        for (sid, host), accepted in sorted(ground_truth.items()):
            verdict = oracle.evaluate([(fleet.servers[sid], host)])[0]
            if (verdict is None) != accepted:
                disagree.append('%s -> %s: Nova %s, oracle %s' % (
                    servers[sid], host,
                    'accepts' if accepted else 'refuses', verdict))
        self.assertEqual([], disagree,
                         'the oracle and Nova disagree:\n' +
                         '\n'.join(disagree))

    def glance_images(self):
        """Serve API-mode image reads from the harness's Glance fixture.

        API mode reads image properties from Glance; the harness's Glance
        is Nova's in-process fixture, which the API oracle reads here.
        """
        def image(oracle, image_id):
            return self.glance.show(nova_context.get_admin_context(),
                                    image_id)
        self.useFixture(fixtures.MockPatchObject(
            nova_rules.ApiOracle, '_glance_image', image))


class TestOracleAgreesWithNova(_Helpers, hetero.HeterogeneousCloudTestCase):

    KINDS = {'ssd': 'host1', 'arm': 'host3', 'ubuntu': 'host1',
             'fast_nic': 'host2'}

    def setUp(self):
        super().setUp()
        self.kind_of = {}
        for kind, host in self.KINDS.items():
            server = self.boot_kind(kind, host)[0]
            self.kind_of[server['id']] = kind
        # Nova's answer for every server to every other host, by real
        # live migrations (each accepted one is migrated back).
        self.truth = {}
        for sid, kind in self.kind_of.items():
            for host in self.compute_hosts:
                if host != self.KINDS[kind]:
                    self.truth[(sid, host)] = self.nova_verdict(sid, host)[0]
        # The harness's rules are what Nova says (a check on the harness).
        for (sid, host), accepted in self.truth.items():
            self.assertEqual(host in self.allowed_hosts[self.kind_of[sid]],
                             accepted, (self.kind_of[sid], host))

    def test_scheduler_and_api_oracles_agree_with_nova(self):
        fleet = self.fleet()
        oracle = nova_rules.SchedulerOracle(fleet)
        self.assertIn('AggregateInstanceExtraSpecsFilter', oracle.rules)
        self.compare(oracle, fleet, self.kind_of, self.truth)

        # The API oracle, with the filters it can evaluate. Every server
        # here has an image that sets an architecture, which only
        # ImagePropertiesFilter checks against host internals: with it
        # enabled they are all left out, each with that reason.
        self.glance_images()
        enabled = list(self.enabled_filters)
        api = nova_rules.ApiOracle(self.conn, fleet, enabled)
        servers = [fleet.servers[s] for s in self.kind_of]
        excluded = api.excluded(servers)
        self.assertIn('hw_architecture is checked by ImagePropertiesFilter',
                      excluded[self._id_of('arm')])
        # Without ImagePropertiesFilter (Nova ignores the image's
        # architecture then), the API oracle evaluates the others and
        # agrees with Nova on every pair Nova's answer does not depend on
        # that filter for.
        enabled.remove('ImagePropertiesFilter')
        api = nova_rules.ApiOracle(self.conn, fleet, enabled)
        self.assertEqual({}, api.excluded(
            [s for s in servers if s.id != self._id_of('arm')]))
        truth = {k: v for k, v in self.truth.items()
                 if self.kind_of[k[0]] != 'arm'}
        self.compare(api, fleet, self.kind_of, truth)

    def _id_of(self, kind):
        return next(s for s, k in self.kind_of.items() if k == kind)


class TestRebalanceHeterogeneous(_Helpers, hetero.HeterogeneousCloudTestCase):

    def setUp(self):
        super().setUp()
        # host1 is hot with ssd servers (allowed on host1/host2 only) and
        # host3 with arm servers (host3/host4 only); host5 and host6, the
        # coldest, accept neither. host2 and host4 carry one plain server.
        self.servers = {}
        for kind, host, n in (('ssd', 'host1', 4), ('arm', 'host3', 4),
                              ('plain', 'host2', 1), ('plain', 'host4', 1)):
            for s in self.boot_kind(kind, host, n, name_prefix=kind + host):
                self.servers[s['id']] = kind
        self.busy = {sid: 1.5 for sid in self.servers}
        self.publish_where(self.hosts_of(self.servers))

    def publish_where(self, where):
        layout = {}
        for sid, host in where.items():
            layout.setdefault(host, []).append((sid, self.busy[sid],
                                                GIB // 2))
        return self.publish(layout)

    def assert_allowed(self, moves):
        for m in moves:
            kind = self.servers[m['server_id']]
            self.assertIn(m['destination'], self.allowed_hosts[kind],
                          '%s server planned onto %s' % (kind,
                                                         m['destination']))

    def test_plan_has_no_refused_move_and_execution_reaches_it(self):
        # Without Nova's rules the plan sends servers where Nova refuses.
        self.write_conf(feasibility='none')
        code, blind, err = self.rebalance('--max-migrations', '6')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        refused = [m for m in blind['moves'] if m['destination']
                   not in self.allowed_hosts[self.servers[m['server_id']]]]
        self.assertTrue(refused, blind['moves'])

        self.write_conf(feasibility='scheduler')
        code, doc, err = self.rebalance('--max-migrations', '6')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual('scheduler', doc['feasibility']['mode'])
        self.assert_allowed(doc['moves'])
        moved = {self.servers[m['server_id']] for m in doc['moves']}
        self.assertLessEqual({'ssd', 'arm'}, moved)
        agg = doc['aggregates'][0]
        rejected = agg['rejected_candidates']
        self.assertIn('AggregateInstanceExtraSpecsFilter', rejected)
        self.assertIn('ImagePropertiesFilter', rejected)
        self.assertLess(agg['imbalance_after'], agg['imbalance_before'])

        code, done, err = self.rebalance('--max-migrations', '6',
                                         '--execute')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual(len(doc['moves']), len(done['results']))
        self.assertEqual({executor.SUCCEEDED},
                         {r['status'] for r in done['results']})
        where = self.hosts_of(self.servers)
        for sid, kind in self.servers.items():
            self.assertIn(where[sid], self.allowed_hosts[kind])
        # Loads follow the servers to where Nova says they are; measured
        # through the product's metric source, the imbalance is the one
        # the dry run predicted.
        self.publish_where(where)
        self.settle_metrics_at_once()
        self.write_conf(feasibility='scheduler')
        code, after, err = self.rebalance('--max-migrations', '0')
        self.assertAlmostEqual(agg['imbalance_after'],
                               after['aggregates'][0]['imbalance_before'],
                               places=6)


class TestPlacementResources(_Helpers):
    """PCI devices and a nested custom resource.

    Checked by Placement and PciPassthroughFilter: dry runs only (these
    fake drivers hold each live migration ~5 s).
    """

    def check_plan(self, flavor_id, allowed):
        servers = self.boot_servers('host1', 3, flavor_id=flavor_id)
        self.publish({'host1': [(s['id'], 2.0, GIB // 2) for s in servers]})
        ids = {s['id'] for s in servers}
        for mode in ('none', 'scheduler'):
            self.write_conf(feasibility=mode)
            code, doc, err = self.rebalance('--max-migrations', '3')
            self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
            dests = {m['destination'] for m in doc['moves']
                     if m['server_id'] in ids}
            if mode == 'none':
                # host3 is the coldest and takes none of them.
                self.assertIn('host3', dests)
            else:
                self.assertEqual(set(allowed), dests)
        return doc


class TestPci(TestPlacementResources, hetero.PciCloudTestCase):

    def test_pci_servers_only_planned_where_devices_are(self):
        doc = self.check_plan(self.pci_flavor_id, ['host2'])
        self.assertIn('PciPassthroughFilter',
                      doc['aggregates'][0]['rejected_candidates'])


class TestNestedResource(TestPlacementResources,
                         hetero.NestedResourceCloudTestCase):

    def test_nested_resource_servers_only_planned_where_it_exists(self):
        doc = self.check_plan(self.magic_flavor_id, ['host2'])
        self.assertIn('Placement',
                      doc['aggregates'][0]['rejected_candidates'])
