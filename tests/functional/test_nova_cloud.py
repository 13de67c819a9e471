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


"""Smoke tests of the in-process Nova cloud, driven through openstacksdk."""

# Must be the first import: it sets up eventlet monkey patching.
from tests.harness import nova_cloud  # isort:skip

import time

from openstack import exceptions

AZ = 'kronos-az'
PLACEMENT_MV = nova_cloud.PLACEMENT_MICROVERSION


class NovaCloudSmokeTest(nova_cloud.NovaCloudTestCase):
    """4 computes in one AZ aggregate, an anti-affinity pair, a few others."""

    def setUp(self):
        super().setUp()
        self.agg = self.create_aggregate(
            'kronos-agg', self.compute_hosts, availability_zone=AZ,
            metadata={'kronos': 'pool-a'})
        self.group = self.create_server_group(
            'aa', 'anti-affinity', rules={'max_server_per_host': 1})
        self.aa1, = self.boot_servers('host1', 1, group_id=self.group['id'],
                                      name_prefix='aa-1')
        self.aa2, = self.boot_servers('host2', 1, group_id=self.group['id'],
                                      name_prefix='aa-2')
        self.others = self.boot_servers('host3', 3, name_prefix='plain')
        self.conn = self.sdk_connection()

    def _wait_sdk_server(self, server_id, predicate, timeout=60):
        deadline = time.time() + timeout
        while True:
            server = self.conn.compute.get_server(server_id)
            if predicate(server):
                return server
            self.assertLess(time.time(), deadline, server)
            time.sleep(0.05)

    def _wait_sdk_migration(self, server_id, status, newer_than=0,
                            timeout=60):
        deadline = time.time() + timeout
        while True:
            migs = [m for m in self.conn.compute.migrations(
                server_id=server_id) if m.id > newer_than]
            if migs and max(migs, key=lambda m: m.id).status == status:
                return max(migs, key=lambda m: m.id)
            self.assertLess(time.time(), deadline,
                            [(m.id, m.status) for m in migs])
            time.sleep(0.05)

    def test_read_cloud_state(self):
        compute = self.conn.compute

        servers = {s.name: s for s in
                   compute.servers(all_projects=True, details=True)}
        self.assertEqual(
            {'aa-1': 'host1', 'aa-2': 'host2', 'plain-1': 'host3',
             'plain-2': 'host3', 'plain-3': 'host3'},
            {name: s.compute_host for name, s in servers.items()})
        for s in servers.values():
            self.assertEqual('ACTIVE', s.status)
            self.assertEqual(AZ, s.availability_zone)
            self.assertEqual(512, s.flavor.ram)
            self.assertEqual(1, s.flavor.vcpus)

        services = [s for s in compute.services()
                    if s.binary == 'nova-compute']
        self.assertEqual(sorted(self.compute_hosts),
                         sorted(s.host for s in services))
        for s in services:
            self.assertEqual(('up', 'enabled', False),
                             (s.state, s.status, s.is_forced_down))

        hypervisors = list(compute.hypervisors(details=True))
        self.assertEqual(sorted(self.compute_hosts),
                         sorted(h.service_details['host']
                                for h in hypervisors))
        for h in hypervisors:
            self.assertEqual(('up', 'enabled'), (h.state, h.status))

        aggs = list(compute.aggregates())
        self.assertEqual(1, len(aggs))
        self.assertEqual(sorted(self.compute_hosts), sorted(aggs[0].hosts))
        self.assertEqual(AZ, aggs[0].availability_zone)
        self.assertEqual('pool-a', aggs[0].metadata['kronos'])

        groups = list(compute.server_groups(all_projects=True))
        self.assertEqual(1, len(groups))
        self.assertEqual('anti-affinity', groups[0].policy)
        self.assertEqual({'max_server_per_host': 1}, groups[0].rules)
        self.assertEqual(sorted([self.aa1['id'], self.aa2['id']]),
                         sorted(groups[0].member_ids))

        flavors = {f.name: f for f in compute.flavors()}
        self.assertEqual((1, 512), (flavors['m1.tiny'].vcpus,
                                    flavors['m1.tiny'].ram))

    def test_placement_inventories_and_usages(self):
        placement = self.conn.placement
        rps = {rp.name: rp.id for rp in placement.resource_providers()}
        self.assertEqual(sorted(self.compute_hosts), sorted(rps))
        expected_used = {'host1': 1, 'host2': 1, 'host3': 3, 'host4': 0}
        for host, rp_id in rps.items():
            inv = placement.get(
                '/resource_providers/%s/inventories' % rp_id,
                microversion=PLACEMENT_MV).json()['inventories']
            usages = placement.get(
                '/resource_providers/%s/usages' % rp_id,
                microversion=PLACEMENT_MV).json()['usages']
            # fake.MediumFakeDriver + nova defaults
            self.assertEqual((10, 0, 4.0), (inv['VCPU']['total'],
                                            inv['VCPU']['reserved'],
                                            inv['VCPU']['allocation_ratio']))
            self.assertEqual(
                (8192, 512, 1.0), (inv['MEMORY_MB']['total'],
                                   inv['MEMORY_MB']['reserved'],
                                   inv['MEMORY_MB']['allocation_ratio']))
            n = expected_used[host]
            self.assertEqual(n, usages['VCPU'])
            self.assertEqual(512 * n, usages['MEMORY_MB'])

            # The typed openstacksdk calls agree with the raw reads.
            typed = {i.resource_class: i for i in
                     placement.resource_provider_inventories(rp_id)}
            self.assertEqual(inv['VCPU']['total'], typed['VCPU'].total)
            self.assertEqual(
                usages, placement.fetch_resource_provider_usages(
                    rp_id).usages)

    def test_live_migrate_with_explicit_host(self):
        server = self.conn.compute.get_server(self.others[0]['id'])
        self.assertEqual('host3', server.compute_host)
        self.conn.compute.live_migrate_server(
            server, host='host4', block_migration='auto')
        server = self._wait_sdk_server(
            server.id, lambda s: s.task_state is None and
            s.compute_host == 'host4')
        self.assertEqual('ACTIVE', server.status)
        mig = self._wait_sdk_migration(server.id, 'completed')
        self.assertEqual(('host3', 'host4'),
                         (mig.source_compute, mig.dest_compute))
        self.assertEqual('live-migration', mig.migration_type)

    def test_anti_affinity_violation_rejected(self):
        # aa-2 lives on host2; sending aa-1 there breaks the group policy.
        server = self.conn.compute.get_server(self.aa1['id'])

        # openstacksdk's live_migrate_server pins microversion 2.30, where
        # the live-migration API is synchronous (async only from 2.34): the
        # scheduler's NoValidHost comes back as HTTP 400.
        exc = self.assertRaises(
            exceptions.BadRequestException,
            self.conn.compute.live_migrate_server,
            server, host='host2', block_migration='auto')
        self.assertIn('No valid host', str(exc))
        mig = self._wait_sdk_migration(server.id, 'error')
        # dest_compute stays None: the scheduler never accepted host2.
        self.assertEqual(('live-migration', 'host1'),
                         (mig.migration_type, mig.source_compute))
        server = self._wait_sdk_server(server.id,
                                       lambda s: s.task_state is None)
        self.assertEqual(('ACTIVE', 'host1'),
                         (server.status, server.compute_host))

        # From 2.34 on the API answers 202 and the failure only shows up as
        # a migration in status 'error' (the server stays where it was).
        first = mig.id
        resp = self.conn.compute.post(
            '/servers/%s/action' % server.id,
            json={'os-migrateLive': {'host': 'host2',
                                     'block_migration': 'auto'}},
            microversion='2.34', raise_exc=False)
        self.assertEqual(202, resp.status_code)
        mig = self._wait_sdk_migration(server.id, 'error', newer_than=first)
        server = self._wait_sdk_server(server.id,
                                       lambda s: s.task_state is None)
        self.assertEqual(('ACTIVE', 'host1'),
                         (server.status, server.compute_host))
