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


"""Ground truth: which live migrations real Nova refuses in a mixed cloud.

For each constraint kind of :class:`tests.harness.hetero.
HeterogeneousCloudTestCase`, a server of that kind booted on an allowed
host: Nova refuses a live migration (explicit host, no force) to a
disallowed host and accepts one to another allowed host; an unconstrained
server moves anywhere. The same for flavor-based PCI passthrough and for
a custom resource class on a nested resource provider (other fake drivers,
hence other classes).
"""

from tests.harness import hetero  # noqa: I100  isort:skip


class _VerdictAsserts:

    def assertRefused(self, server_id, host, reason):
        """Nova refuses the move; ``reason`` is in its explanation."""
        accepted, detail = self.nova_verdict(server_id, host)
        self.assertFalse(accepted, detail)
        self.assertIn('No valid host was found', detail)
        self.assertIn(reason, detail)
        return detail

    def assertAccepted(self, server_id, host):
        """Nova accepts the move (and moves the server back)."""
        source = self.host_of(server_id)
        accepted, detail = self.nova_verdict(server_id, host)
        self.assertTrue(accepted, detail)
        self.assertEqual(source, self.host_of(server_id))
        return detail


class TestNovaVerdicts(_VerdictAsserts, hetero.HeterogeneousCloudTestCase):

    def test_ssd_flavor_stays_in_ssd_aggregate(self):
        server, = self.boot_kind('ssd', 'host1')
        self.assertRefused(server['id'], 'host3',
                           "'AggregateInstanceExtraSpecsFilter: "
                           "(start: 1, end: 0)'")
        self.assertAccepted(server['id'], 'host2')

    def test_arm_image_needs_aarch64_host(self):
        server, = self.boot_kind('arm', 'host3')
        self.assertRefused(server['id'], 'host5',
                           "'ImagePropertiesFilter: (start: 1, end: 0)'")
        self.assertAccepted(server['id'], 'host4')

    def test_ubuntu_image_kept_out_of_windows_aggregate(self):
        server, = self.boot_kind('ubuntu', 'host2')
        self.assertRefused(server['id'], 'host6',
                           "'AggregateImagePropertiesIsolation: "
                           "(start: 1, end: 0)'")
        self.assertAccepted(server['id'], 'host4')
        # The isolation is one-sided: a windows image may leave the
        # windows aggregate.
        windows, = self.boot_kind('windows', 'host5')
        self.assertAccepted(windows['id'], 'host1')

    def test_fast_nic_flavor_needs_trait(self):
        server, = self.boot_kind('fast_nic', 'host2')
        self.assertRefused(server['id'], 'host1',
                           'Got no allocation candidates from the '
                           'Placement API')
        self.assertAccepted(server['id'], 'host6')

    def test_plain_server_moves_anywhere(self):
        server, = self.boot_kind('plain', 'host1')
        for host in self.compute_hosts[1:]:
            self.assertAccepted(server['id'], host)


class TestPciVerdicts(_VerdictAsserts, hetero.PciCloudTestCase):

    def test_pci_flavor_needs_pci_host(self):
        server, = self.boot_servers('host1', 1, flavor_id=self.pci_flavor_id,
                                    name_prefix='pci')
        self.assertRefused(server['id'], 'host3',
                           "'PciPassthroughFilter: (start: 1, end: 0)'")
        self.assertAccepted(server['id'], 'host2')
        plain, = self.boot_servers('host1', 1, name_prefix='plain')
        self.assertAccepted(plain['id'], 'host3')


class TestNestedResourceVerdicts(_VerdictAsserts,
                                 hetero.NestedResourceCloudTestCase):

    def test_magic_flavor_needs_nested_inventory(self):
        server, = self.boot_servers('host1', 1,
                                    flavor_id=self.magic_flavor_id,
                                    name_prefix='magic')
        self.assertRefused(server['id'], 'host3',
                           'Got no allocation candidates')
        self.assertAccepted(server['id'], 'host2')
