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


"""Heterogeneous in-process Nova clouds: hosts that not every server fits.

:class:`HeterogeneousCloudTestCase` is the kronos cloud (real Nova
in-process, see :mod:`tests.harness.kronos_cloud`) with six computes and
four kinds of placement constraint, each confining one kind of server to a
subset of the hosts, enforced by Nova's own scheduler:

==========  ======================================  ==================
kind        enforced by                             allowed hosts
==========  ======================================  ==================
ssd         AggregateInstanceExtraSpecsFilter       host1, host2
arm         ImagePropertiesFilter                   host3, host4
ubuntu      AggregateImagePropertiesIsolation       host1 .. host4
fast_nic    Placement (required trait)              host2, host4, host6
plain       (nothing)                               host1 .. host6
==========  ======================================  ==================

Two smaller clouds (three computes each, other fake drivers, hence other
classes) add constraint kinds that need a special driver:

* :class:`PciCloudTestCase`: flavor-based PCI passthrough
  (``PciPassthroughFilter``), ``pci.small`` servers on host1/host2 only;
* :class:`NestedResourceCloudTestCase`: a custom resource class on a nested
  resource provider (Placement), ``magic.small`` servers on host1/host2
  only.

:meth:`NovaVerdictMixin.nova_verdict` (on all three) asks real Nova whether
it accepts a live migration of a server to a host: the ground truth for a
feasibility oracle.

Import this module before anything that imports requests, keystoneauth1 or
openstacksdk (eventlet patching order, see :mod:`tests.harness.nova_cloud`).
"""

from tests.harness import kronos_cloud  # noqa: I100  isort:skip

import copy
import time

import fixtures
from oslo_serialization import jsonutils

from nova import context as nova_context
from nova.objects import fields as obj_fields
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional.api import client as api_client
from nova.virt import fake as fake_virt

#: Live-migration statuses after which nothing more happens.
FINAL_MIGRATION_STATUSES = ('completed', 'error', 'failed', 'cancelled')

#: The scheduler's INFO lines that say why a request found no host.
_SCHEDULER_REASONS = ('Filtering removed all hosts',
                      'Got no allocation candidates')


class NovaVerdictMixin:
    """:meth:`nova_verdict`: real Nova's answer to a live migration.

    For :class:`tests.harness.nova_cloud.NovaCloudTestCase` subclasses.
    """

    #: Force-complete running live migrations (the ``FakeLiveMigrate*``
    #: drivers otherwise hold each one ~5 s before completing it).
    force_complete_live_migrations = False

    # -- ground truth --------------------------------------------------------

    def nova_verdict(self, server_id, host, migrate_back=True):
        """Does real Nova accept a live migration of the server to ``host``?

        Submits ``os-migrateLive`` with an explicit ``host``, no ``force``
        and ``block_migration='auto'`` at the admin client's microversion
        (``latest``: asynchronous API), so the scheduler and Placement
        validate the target, and waits for the migration to end. A refused
        target ends as either an HTTP 400 (synchronous API, e.g. 2.30) or
        a 202 followed by a migration in ``error``; both are handled. The
        server ends ACTIVE with no task.

        :param migrate_back: after an accepted move, live-migrate the server
            back to its source (same way: explicit host, no force) and fail
            the test unless that is accepted too.
        :returns: ``(accepted, detail)``. ``detail`` is the migration's
            final status and, for a refusal, the reason Nova gives: the
            instance action event's details ("No valid host was found. ")
            and the scheduler's log line naming the filters that emptied
            the host list (``Filtering removed all hosts ... Filter results:
            [...]``) or Placement's refusal (``Got no allocation candidates
            from the Placement API...``).
        """
        source = self.host_of(server_id)
        before = self._last_migration_id(server_id)
        log_mark = len(self.stdlog.logger.output)
        body = {'os-migrateLive': {'host': host, 'block_migration': 'auto'}}
        try:
            self.admin_api.post_server_action(server_id, body)
        except api_client.OpenStackApiException as exc:
            if exc.response.status_code != 400:
                raise
            self._wait_idle(server_id)
            return False, 'HTTP 400: %s%s' % (
                exc, self._scheduler_reason(server_id, log_mark))
        mig = self._wait_new_migration(server_id, before)
        server = self._wait_idle(server_id)
        accepted = mig['status'] == 'completed'
        if accepted:
            self.assertEqual(host, server['OS-EXT-SRV-ATTR:host'])
            detail = 'completed %s -> %s' % (mig['source_compute'],
                                             mig['dest_compute'])
            if migrate_back and host != source:
                back, why = self.nova_verdict(server_id, source,
                                              migrate_back=False)
                if not back:
                    self.fail('Nova refused to move %s back to %s: %s' % (
                        server_id, source, why))
                detail += ' (moved back)'
            return True, detail
        self.assertEqual(source, server['OS-EXT-SRV-ATTR:host'])
        detail = 'migration %s' % mig['status']
        event = self._action_failure(server_id)
        if event:
            detail += ': %s' % event
        return False, detail + self._scheduler_reason(server_id, log_mark)

    def _last_migration_id(self, server_id):
        ids = [m['id'] for m in self.admin_api.get_migrations()
               if m['instance_uuid'] == server_id]
        return max(ids) if ids else 0

    def _wait_new_migration(self, server_id, after_id):
        deadline = time.time() + self.wait_timeout
        forced = set()
        while True:
            migs = [m for m in self.admin_api.get_migrations()
                    if m['instance_uuid'] == server_id and
                    m['id'] > after_id]
            if migs:
                mig = max(migs, key=lambda m: m['id'])
                if mig['status'] in FINAL_MIGRATION_STATUSES:
                    return mig
                if (self.force_complete_live_migrations and
                        mig['status'] == 'running' and
                        mig['id'] not in forced):
                    forced.add(mig['id'])
                    try:
                        self.admin_api.force_complete_migration(
                            server_id, mig['id'])
                    except api_client.OpenStackApiException:
                        pass  # finished meanwhile
            if time.time() > deadline:
                self.fail('timed out waiting for the live migration of %s: '
                          '%s' % (server_id, migs))
            time.sleep(self.poll_interval)

    def _wait_idle(self, server_id):
        server = self.wait_for_server(
            server_id, lambda s: s['OS-EXT-STS:task_state'] is None)
        self.assertEqual('ACTIVE', server['status'], server.get('fault'))
        return server

    def _action_failure(self, server_id):
        """The failed event details of the server's newest action."""
        actions = self.admin_api.get_instance_actions(server_id)
        if not actions:
            return ''
        newest = max(actions, key=lambda a: a['start_time'])
        action = self.admin_api.get_instance_action_details(
            server_id, newest['request_id'])
        return '; '.join(
            '%s %s' % (e['event'], e.get('details') or e.get('result'))
            for e in action.get('events', ())
            if e.get('result') == 'Error')

    def _scheduler_reason(self, server_id, log_mark):
        lines = [line for line in
                 self.stdlog.logger.output[log_mark:].splitlines()
                 if any(r in line for r in _SCHEDULER_REASONS)]
        # The filter line names the instance; Placement's refusal does not
        # (but the scheduler logs nothing else of the kind meanwhile unless
        # another request runs concurrently).
        mine = [line for line in lines if server_id in line] or lines
        return ''.join(' | %s' % line.split('] ', 1)[-1] for line in mine)


class HeterogeneousCloudTestCase(NovaVerdictMixin,
                                 kronos_cloud.KronosCloudTestCase):
    """Six computes in ``agg1`` (AZ ``az1``) with four constraint kinds.

    The scheduler runs ``kronos_cloud.ENABLED_FILTERS`` (which already holds
    ``ImagePropertiesFilter``) plus ``AggregateInstanceExtraSpecsFilter``
    and ``AggregateImagePropertiesIsolation``. Host loads are served from
    the file metric source (every host at 20 % CPU and memory), so the
    kronos filter passes every host.

    Built in ``setUp`` (ids exposed as attributes; the host sets as the
    class attributes of the same name):

    a. **ssd** (AggregateInstanceExtraSpecsFilter): aggregate ``ssd``
       (``self.ssd_aggregate``, no AZ, overlapping ``agg1``) over
       ``ssd_hosts`` = host1, host2 with metadata ``ssd=true``; flavor
       ``ssd.small`` (``self.ssd_flavor_id``; 1 vCPU, 512 MB, 1 GB) with
       extra spec ``aggregate_instance_extra_specs:ssd=true``. Its servers
       may only live on host1/host2 (every other host lacks the ``ssd``
       key). The filter does not keep other flavors off host1/host2.
    b. **arm** (ImagePropertiesFilter): image ``arm-image``
       (``self.arm_image_id``) with ``hw_architecture=aarch64``. The fake
       driver reports only ``(x86_64, fake, hvm)`` in
       ``supported_instances``; ``arm_hosts`` = host3, host4 report
       ``(aarch64, fake, hvm)`` as well (driver ``host_status_base``, then
       ``update_available_resource``). Servers of that image may only live
       on host3/host4. The default image (``architecture=x86_64``) still
       fits every host.
    c. **ubuntu** (AggregateImagePropertiesIsolation): aggregate
       ``windows`` (``self.windows_aggregate``) over ``windows_hosts`` =
       host5, host6 with metadata ``os_distro=windows``; image
       ``ubuntu-image`` (``self.ubuntu_image_id``, ``os_distro=ubuntu``)
       and image ``windows-image`` (``self.windows_image_id``,
       ``os_distro=windows``). The filter rejects a host when one of its
       aggregates sets a key that the image *also* sets, to another value;
       a key the image lacks, or a host without the key, passes. So:
       ubuntu servers may only live on host1..host4; windows servers (and
       servers of images without ``os_distro``, e.g. the default image)
       fit every host: the windows aggregate is *not* reserved for windows.
    d. **fast_nic** (Placement required trait): flavor ``fastnic.small``
       (``self.fast_nic_flavor_id``) with extra spec
       ``trait:CUSTOM_FAST_NIC=required``; the trait is added to the
       compute node resource providers of ``fast_nic_hosts`` = host2,
       host4, host6 through the Placement API. Servers of that flavor may
       only live on those hosts (Placement returns no allocation
       candidate elsewhere, before any filter runs).
    e. **plain**: the default flavor ``m1.tiny`` (``DEFAULT_FLAVOR_ID``)
       and image (``DEFAULT_IMAGE_ID``): every host.

    ``self.allowed_hosts`` maps each kind to its allowed hosts and
    :meth:`boot_kind` boots a server of a kind (forced host: filters are
    skipped, Placement is still claimed, so a ``fast_nic`` server cannot
    be forced onto a host without the trait).
    """

    compute_hosts = ('host1', 'host2', 'host3', 'host4', 'host5', 'host6')
    use_prometheus = False

    enabled_filters = kronos_cloud.ENABLED_FILTERS + [
        'AggregateInstanceExtraSpecsFilter',
        'AggregateImagePropertiesIsolation',
    ]

    ssd_hosts = ('host1', 'host2')
    arm_hosts = ('host3', 'host4')
    windows_hosts = ('host5', 'host6')
    fast_nic_hosts = ('host2', 'host4', 'host6')

    fast_nic_trait = 'CUSTOM_FAST_NIC'
    extra_architecture = obj_fields.Architecture.AARCH64

    #: Uniform load served for every host (CPU and memory).
    host_load = 0.2

    # -- setup ---------------------------------------------------------------

    def configure_scheduler(self):
        super().configure_scheduler()
        self.flags(enabled_filters=self.enabled_filters,
                   group='filter_scheduler')

    def setUp(self):
        super().setUp()
        hosts = self.compute_hosts
        self.publish_host_loads(cpu={h: self.host_load for h in hosts},
                                memory={h: self.host_load for h in hosts})
        # a. ssd: isolation aggregate + flavor extra spec.
        self.ssd_aggregate = self.create_aggregate(
            'ssd', self.ssd_hosts, metadata={'ssd': 'true'})
        self.ssd_flavor_id = self.create_small_flavor(
            'ssd.small', {'aggregate_instance_extra_specs:ssd': 'true'})
        # b. arm: hosts that also run aarch64 + an aarch64 image.
        for host in self.arm_hosts:
            self.add_supported_instance(host, self.extra_architecture)
        self.arm_image_id = self.create_image(
            'arm-image', {'hw_architecture': self.extra_architecture})
        # c. ubuntu: os_distro=windows aggregate + two os_distro images.
        self.windows_aggregate = self.create_aggregate(
            'windows', self.windows_hosts,
            metadata={'os_distro': 'windows'})
        self.ubuntu_image_id = self.create_image(
            'ubuntu-image', {'os_distro': 'ubuntu'})
        self.windows_image_id = self.create_image(
            'windows-image', {'os_distro': 'windows'})
        # d. fast_nic: trait on some providers + flavor requiring it.
        self._create_trait(self.fast_nic_trait)
        for host in self.fast_nic_hosts:
            self.add_provider_trait(host, self.fast_nic_trait)
        self.fast_nic_flavor_id = self.create_small_flavor(
            'fastnic.small', {'trait:%s' % self.fast_nic_trait: 'required'})

        everywhere = tuple(hosts)
        self.allowed_hosts = {
            'ssd': tuple(self.ssd_hosts),
            'arm': tuple(self.arm_hosts),
            'ubuntu': tuple(h for h in hosts if h not in self.windows_hosts),
            'windows': everywhere,
            'fast_nic': tuple(self.fast_nic_hosts),
            'plain': everywhere,
        }
        self.kind_args = {
            'ssd': {'flavor_id': self.ssd_flavor_id},
            'arm': {'image_id': self.arm_image_id},
            'ubuntu': {'image_id': self.ubuntu_image_id},
            'windows': {'image_id': self.windows_image_id},
            'fast_nic': {'flavor_id': self.fast_nic_flavor_id},
            'plain': {},
        }

    # -- building blocks -----------------------------------------------------

    def create_small_flavor(self, name, extra_specs=None, vcpus=1,
                            memory_mb=512, disk_gb=1):
        """A public flavor (m1.tiny sized by default) with extra specs."""
        return self._create_flavor(
            name=name, memory_mb=memory_mb, vcpu=vcpus, disk=disk_gb,
            ephemeral=0, extra_spec=extra_specs)

    def create_image(self, name, properties):
        """Register an image in the fake Glance; returns its id.

        A copy of the fixture's default image (raw, x86_64 unless
        ``properties`` say otherwise) with ``properties`` merged in.
        """
        image = copy.deepcopy(nova_fixtures.GlanceFixture.image1)
        image.pop('id')
        image['name'] = name
        if 'hw_architecture' in properties:
            image['properties'].pop('architecture', None)
        image['properties'].update(properties)
        return self.glance.create(None, image)['id']

    def add_supported_instance(self, host, arch,
                               hv_type=obj_fields.HVType.FAKE,
                               vm_mode=obj_fields.VMMode.HVM):
        """Make ``host``'s fake driver report ``arch`` too, and refresh.

        ``ImagePropertiesFilter`` reads ``supported_instances`` from the
        ComputeNode record that ``update_available_resource`` writes.
        """
        driver = self.computes[host].manager.driver
        supported = list(driver.host_status_base['supported_instances'])
        if (arch, hv_type, vm_mode) not in supported:
            supported.append((arch, hv_type, vm_mode))
        driver.host_status_base = dict(driver.host_status_base,
                                       supported_instances=supported)
        self.computes[host].manager.update_available_resource(
            nova_context.get_admin_context())

    def add_provider_trait(self, host, trait):
        """Add ``trait`` (must exist) to ``host``'s compute node provider.

        Keeps the provider's other traits (the driver's COMPUTE_* ones).
        Nova's resource tracker leaves traits it does not own in place.
        """
        rp_uuid = self.placement_rp_uuid(host)
        traits = set(self._get_provider_traits(rp_uuid)) | {trait}
        generation = self._get_resource_provider_by_uuid(
            rp_uuid)['generation']
        self.placement.put(
            '/resource_providers/%s/traits' % rp_uuid,
            {'resource_provider_generation': generation,
             'traits': sorted(traits)}, version='1.6')

    def boot_kind(self, kind, host, count=1, name_prefix=None):
        """Boot ``count`` servers of ``kind`` on ``host`` (forced host).

        :returns: the server dicts, as :meth:`boot_servers`.
        """
        return self.boot_servers(host, count,
                                 name_prefix=name_prefix or kind,
                                 **self.kind_args[kind])


class PciCloudTestCase(NovaVerdictMixin, kronos_cloud.KronosCloudTestCase):
    """Flavor-based PCI passthrough: three computes, two with devices.

    ``fake.FakeLiveMigrateDriverWithPciResources`` reports 3 PFs with one
    VF each on every compute; ``pci_hosts`` = host1, host2 keep them, the
    others report none (their driver instance's
    ``get_available_resource`` drops ``pci_passthrough_devices``, then the
    compute is refreshed). ``[pci]device_spec`` tags every device
    ``live_migratable=yes`` and alias ``fake-vf`` asks for a
    live-migratable VF; flavor ``pci.small`` (``self.pci_flavor_id``)
    requests ``pci_passthrough:alias=fake-vf:1``. ``PciPassthroughFilter``
    is enabled: ``pci.small`` servers may only live on host1/host2. The
    fake driver holds each live migration until force-completed, which
    :meth:`nova_verdict` does.
    """

    compute_hosts = ('host1', 'host2', 'host3')
    compute_driver = 'fake.FakeLiveMigrateDriverWithPciResources'
    force_complete_live_migrations = True
    use_prometheus = False
    pci_hosts = ('host1', 'host2')
    pci_alias = 'fake-vf'
    pci_vendor_id = '8086'
    pci_product_id = '1515'

    def configure_scheduler(self):
        super().configure_scheduler()
        self.flags(enabled_filters=kronos_cloud.ENABLED_FILTERS + [
            'PciPassthroughFilter'], group='filter_scheduler')
        # Mocks of sysfs reads that the fake devices need.
        self.useFixture(fake_virt.FakeDriverWithPciResources.
                        FakeDriverWithPciResourcesConfigFixture())
        self.flags(device_spec=[jsonutils.dumps({
            'address': {'domain': '0000', 'bus': bus, 'slot': '00',
                        'function': '.*'},
            'live_migratable': 'yes'}) for bus in ('01', '02', '03')],
            alias=[jsonutils.dumps({
                'name': self.pci_alias, 'device_type': 'type-VF',
                'vendor_id': self.pci_vendor_id,
                'product_id': self.pci_product_id,
                'live_migratable': 'yes'})],
            group='pci')
        # The fake devices' ids ('fake-vendor_id') match no valid alias
        # (4 hex digits): report them as 8086:1515, and no device at all on
        # hosts outside pci_hosts. Patched before any compute starts.
        real = fake_virt.FakeDriverWithPciResources.get_available_resource
        pci_hosts = self.pci_hosts
        vendor_id, product_id = self.pci_vendor_id, self.pci_product_id

        def get_available_resource(driver, nodename):
            status = real(driver, nodename)
            devices = jsonutils.loads(status['pci_passthrough_devices'])
            if driver._host not in pci_hosts:
                devices = []
            for dev in devices:
                dev.update(vendor_id=vendor_id, product_id=product_id)
            status['pci_passthrough_devices'] = jsonutils.dumps(devices)
            return status
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.fake.FakeDriverWithPciResources.'
            'get_available_resource', get_available_resource))

    def setUp(self):
        super().setUp()
        hosts = self.compute_hosts
        self.publish_host_loads(cpu={h: 0.2 for h in hosts},
                                memory={h: 0.2 for h in hosts})
        self.pci_flavor_id = self._create_flavor(
            name='pci.small', memory_mb=512, vcpu=1, disk=1, ephemeral=0,
            extra_spec={'pci_passthrough:alias': '%s:1' % self.pci_alias})


class NestedResourceCloudTestCase(NovaVerdictMixin,
                                  kronos_cloud.KronosCloudTestCase):
    """A custom resource on a nested provider, on some computes only.

    ``fake.FakeLiveMigrateDriverWithNestedCustomResources`` puts a child
    provider ``<node>-child`` with 10 ``CUSTOM_MAGIC`` under every compute
    node; on hosts outside ``magic_hosts`` = host1, host2 the driver
    instance reports no child inventory (refreshed after start). Flavor
    ``magic.small`` (``self.magic_flavor_id``) asks for
    ``resources:CUSTOM_MAGIC=1``: its servers may only live on host1/host2
    (Placement has no allocation candidate elsewhere). The fake driver
    holds each live migration until force-completed, which
    :meth:`nova_verdict` does.
    """

    compute_hosts = ('host1', 'host2', 'host3')
    compute_driver = 'fake.FakeLiveMigrateDriverWithNestedCustomResources'
    force_complete_live_migrations = True
    use_prometheus = False
    magic_hosts = ('host1', 'host2')

    def start_compute(self, host, *args, **kwargs):
        svc = super().start_compute(host, *args, **kwargs)
        if host not in self.magic_hosts:
            svc.manager.driver.child_resources = {}
            svc.manager.update_available_resource(
                nova_context.get_admin_context())
        return svc

    def setUp(self):
        super().setUp()
        hosts = self.compute_hosts
        self.publish_host_loads(cpu={h: 0.2 for h in hosts},
                                memory={h: 0.2 for h in hosts})
        self.magic_flavor_id = self._create_flavor(
            name='magic.small', memory_mb=512, vcpu=1, disk=1, ephemeral=0,
            extra_spec={'resources:CUSTOM_MAGIC': '1'})
