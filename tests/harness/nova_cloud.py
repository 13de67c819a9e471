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


"""An in-process Nova + Placement cloud for functional tests and demos.

``NovaCloudTestCase`` builds on Nova's own functional test harness
(``nova.tests.functional.integrated_helpers._IntegratedTestBase``, shipped in
the nova wheel): API, conductor, scheduler and N fake computes run in one
process against in-memory sqlite, with Placement served by the
``PlacementFixture``. Both the Nova API and Placement are reached over HTTP
through wsgi-intercept, so production code written against openstacksdk runs
unchanged against it::

    conn = self.sdk_connection()
    conn.compute.servers(all_projects=True, details=True)   # .compute_host
    conn.compute.live_migrate_server(srv, host='host2', block_migration='auto')
    for rp in conn.placement.resource_providers():
        inv = conn.placement.get(
            '/resource_providers/%s/inventories' % rp.id,
            microversion='1.39').json()['inventories']
        use = conn.placement.get(
            '/resource_providers/%s/usages' % rp.id,
            microversion='1.39').json()['usages']

Placement reads
---------------
``nova.test.TestCase`` installs ``OpenStackSDKFixture``, which (a) mocks
``openstack.proxy.Proxy.get_endpoint`` and (b) replaces the placement proxy
with a bare keystoneauth session client. ``sdk_connection()`` therefore
builds ``conn.placement`` (and ``conn.compute``) while temporarily restoring
the real ``ServiceDescription._make_proxy`` (captured when this module is
imported) and passes ``placement_endpoint_override``. The resulting
``conn.placement`` is a real typed ``openstack.placement.v1._proxy.Proxy``:

* ``conn.placement.resource_providers()`` -> ``ResourceProvider`` objects
  (``.id``, ``.name``, ``.generation``) works.
* ``conn.placement.resource_provider_inventories(rp)`` -> typed inventories
  (``resource_class``, ``total``, ``reserved``, ``allocation_ratio``, ...)
  works.
* ``conn.placement.fetch_resource_provider_usages(rp).usages`` works.
* The raw adapter form ``conn.placement.get(url, microversion='1.39')``
  (``.json()['inventories']`` / ``['usages']``) also works. It is the
  recommended form for production code: it only depends on the Placement
  REST API, not on openstacksdk's typed resource classes.

Placement's noauth2 middleware needs ``X-Auth-Token: admin`` for admin
rights; the session sends it (Nova ignores it, using the ``X-Auth-*`` /
``X-Roles`` noauth headers of the harness admin client instead).

Concurrency mode and import order
---------------------------------
Importing ``nova.tests.functional`` calls ``nova.monkey_patch.patch()``:
eventlet monkey patching unless ``OS_NOVA_DISABLE_EVENTLET_PATCHING`` is
``1``/``true``/``yes`` (native threading). We run in **eventlet mode** (the
default when the variable is unset). Threading mode also passes the smoke
tests but was ~2.5x slower (9-11 s vs 3.6-5 s per test) and one standalone
run hung, so it is not the default. Never mix the modes in one process.

Import order matters: this module must be imported **before** anything that
imports ``eventlet`` (fatal in threading mode), ``urllib3``/``requests``,
``keystoneauth1``, ``openstack`` or ``oslo_context`` (monkey-patching
warnings in eventlet mode). Test modules and demo scripts must import
``tests.harness.nova_cloud`` first. ``pytest -n`` (xdist) is known to
hang in eventlet mode; use stestr for parallel runs.

Behaviour worth knowing (real Nova/openstacksdk behaviour, not harness
artefacts)
-------------------------------------------------------------------------
* ``conn.compute.live_migrate_server()`` (openstacksdk 4.22) pins compute
  microversion **2.30**, where the live-migration API is *synchronous*
  (async only from 2.34): a target rejected by the scheduler (e.g. an
  anti-affinity violation) raises ``openstack.exceptions.BadRequestException``
  ("No valid host was found") *and* leaves a migration in status ``error``;
  the server stays ACTIVE on its source. With >= 2.34 the API answers 202
  and only the migration record shows the failure.
* ``GET /os-hypervisors/detail`` has no vcpus/memory fields since 2.88; read
  capacity from Placement inventories/usages instead.
* A failed live-migration's ``dest_compute`` is None.

Running outside a test runner
-----------------------------
``case = MyCase('run_demo'); result = unittest.TestResult(); case.run(result)``
works; ``result.errors``/``result.failures`` carry any traceback. Nova's
``_clear_attrs`` cleanup deletes public instance attributes when the test
finishes, so keep what you need in ``_``-prefixed attributes or return it
out of band (e.g. append to a module-level list).

Fake driver capacity (nova 34, per compute node)
------------------------------------------------
=========================  =====  =========  ========
driver                     vcpus  memory_mb  local_gb
=========================  =====  =========  ========
fake.SmallFakeDriver           2       8192      1028
fake.MediumFakeDriver         10       8192      1028
fake.FakeDriver             1000     800000    600000
=========================  =====  =========  ========

Placement inventories come with ``reserved_host_memory_mb=512`` and the
initial allocation ratios (VCPU 4.0, MEMORY_MB 1.0, DISK_GB 1.0), so a
MediumFakeDriver host fits 15 servers of 512 MB / 1 vCPU. We default to
``fake.MediumFakeDriver`` (realistic utilisation figures) and let subclasses
resize hosts through ``host_vcpus`` / ``host_memory_mb`` / ``host_disk_gb``
or per host via ``host_capacity = {'host1': {'vcpus': 16, ...}}``; the
resize is applied right after each compute starts and pushed to the
ComputeNode record and to Placement.

Speed
-----
Everything runs in one CPU-bound Python process (~0.19 s per server built).
Measured: harness setUp with 4 computes ~2.5 s; 256 servers (21 per host on
12 hosts of 16 vCPU / 16 GB, via ``boot_servers``) ~49 s; listing 256
servers through openstacksdk ~1.3 s. ``skip_reshape_allocation_scan`` (on by
default) removes a quadratic per-claim Placement scan that otherwise makes
the same boot take ~100-130 s.
"""

# NOTE: keep this import first: it applies (or forbids) eventlet monkey
# patching before anything else gets imported.
import nova.tests.functional  # noqa: F401  isort:skip

import contextlib
import os
import sys
import time
import warnings

import fixtures
from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from nova import context as nova_context
from nova.tests import fixtures as nova_fixtures
from nova.tests.functional import integrated_helpers
from openstack import connection
from openstack import service_description
from openstack import warnings as os_warnings

# Captured before any test's OpenStackSDKFixture replaces it.
_REAL_MAKE_PROXY = service_description.ServiceDescription._make_proxy

PLACEMENT_MICROVERSION = '1.39'
DEFAULT_IMAGE_ID = nova_fixtures.GlanceFixture.image1['id']
_MISSING = object()
DEFAULT_FLAVOR_ID = '1'  # m1.tiny: 1 vCPU, 512 MB, 1 GB disk


def _api_paste_path():
    candidates = [
        os.path.join(sys.prefix, 'etc', 'nova', 'api-paste.ini'),
        os.path.join(sys.base_prefix, 'etc', 'nova', 'api-paste.ini'),
        '/usr/local/etc/nova/api-paste.ini',
        '/etc/nova/api-paste.ini',
    ]
    for path in candidates:
        if os.path.exists(path):
            return path
    return None


class NovaCloudTestCase(integrated_helpers._IntegratedTestBase):
    """Nova API + conductor + scheduler + N fake computes + Placement."""

    #: Compute hosts started (in this order) by ``_setup_compute_service``.
    compute_hosts = ('host1', 'host2', 'host3', 'host4')
    #: Virt driver of every compute (see module docstring for capacities).
    compute_driver = 'fake.MediumFakeDriver'
    #: Uniform capacity overrides (None keeps the driver's value).
    host_vcpus = None
    host_memory_mb = None
    host_disk_gb = None
    #: Per host overrides: {'host1': {'vcpus': 16, 'memory_mb': 16384}}.
    host_capacity = {}

    #: A rejected live-migration target behaves as in production:
    #: API 202, migration 'error', server stays ACTIVE on its source.
    CAST_AS_CALL = False
    ADMIN_API = True
    microversion = 'latest'
    REQUIRES_LOCKING = False

    #: Nova's resource tracker fetches the allocations of *every* consumer
    #: on a host after each claim (``get_allocations_for_provider_tree``,
    #: only needed when a driver reshapes its provider tree, which the fake
    #: drivers never do): O(servers-per-host^2) placement GETs when packing
    #: hosts. True stubs it out (returns {}) for speed.
    skip_reshape_allocation_scan = True

    #: Seconds to wait for servers / migrations, and the polling interval.
    #: Everything runs in this one process: polling the API too often
    #: steals CPU from the services doing the work.
    wait_timeout = 300
    poll_interval = 0.2

    # -- hooks -------------------------------------------------------------

    def configure_scheduler(self):
        """Hook run before any service starts. Override to set flags, e.g.

        ``self.flags(weight_classes=[...], group='filter_scheduler')``.
        """

    # -- harness wiring ----------------------------------------------------

    def _clear_attrs(self):
        # Nova's cleanup deletes every public instance attribute. pytest's
        # unittest integration sets an instance attribute named after the
        # test method and ``delattr``s it after the run, which would then
        # raise AttributeError: keep that one attribute alive.
        name = self._testMethodName
        keep = self.__dict__.get(name, _MISSING)
        super()._clear_attrs()
        if keep is not _MISSING:
            self.__dict__[name] = keep

    def _setup_services(self):
        paste = _api_paste_path()
        if paste:
            self.flags(api_paste_config=paste, group='wsgi')
        self.flags(compute_driver=self.compute_driver)
        # Many servers in one project and big server groups.
        self.flags(driver='nova.quota.NoopQuotaDriver', group='quota')
        if self.skip_reshape_allocation_scan:
            self.useFixture(fixtures.MockPatch(
                'nova.scheduler.client.report.SchedulerReportClient.'
                'get_allocations_for_provider_tree', return_value={}))
        self.configure_scheduler()
        super()._setup_services()
        # ADMIN_API: self.api is self.admin_api, at ``self.microversion``.

    def _setup_compute_service(self):
        first = None
        for host in self.compute_hosts:
            svc = self.start_compute(host)
            first = first or svc
        return first

    def start_compute(self, host, vcpus=None, memory_mb=None, disk_gb=None):
        """Start a compute on ``host`` and apply any capacity override."""
        svc = self._start_compute(host)
        cap = dict(self.host_capacity.get(host, {}))
        for key, val in (('vcpus', vcpus or self.host_vcpus),
                         ('memory_mb', memory_mb or self.host_memory_mb),
                         ('local_gb', disk_gb or self.host_disk_gb)):
            if val is not None:
                cap.setdefault(key, val)
        if 'disk_gb' in cap:
            cap['local_gb'] = cap.pop('disk_gb')
        if cap:
            self.set_host_capacity(host, **cap)
        return svc

    def set_host_capacity(self, host, vcpus=None, memory_mb=None,
                          local_gb=None):
        """Resize a fake compute and refresh ComputeNode + Placement."""
        driver = self.computes[host].manager.driver
        for attr, val in (('vcpus', vcpus), ('memory_mb', memory_mb),
                          ('local_gb', local_gb)):
            if val is not None:
                setattr(driver, attr, val)
                setattr(driver.resources, attr, val)
        ctx = nova_context.get_admin_context()
        self.computes[host].manager.update_available_resource(ctx)

    # -- openstacksdk ------------------------------------------------------

    def sdk_headers(self):
        """noauth2 headers for Nova (admin client) and Placement (admin)."""
        api = self.admin_api
        return {
            'X-Auth-User': api.auth_user,
            'X-User-Id': api.auth_user,
            'X-Auth-Project-Id': api.project_id,
            'X-Roles': ','.join(api.roles),
            'X-Auth-Token': 'admin',
        }

    def sdk_connection(self, compute_api_version='2.latest'):
        """An admin ``openstack.connection.Connection`` on this cloud.

        Reaches the harness Nova API and Placement through their
        wsgi-intercepts. Typed compute calls still negotiate their own
        microversion per resource (e.g. ``live_migrate_server`` pins 2.30).
        """
        sess = ks_session.Session(auth=noauth.NoAuth(),
                                  additional_headers=self.sdk_headers())
        with warnings.catch_warnings():
            # "You have a configured API_VERSION with 'latest' in it"
            warnings.simplefilter('ignore', os_warnings.ConfigurationWarning)
            conn = connection.Connection(
                session=sess,
                compute_endpoint_override=self.api.base_url,
                compute_api_version=compute_api_version,
                placement_endpoint_override=self.placement_fixture.endpoint,
                placement_api_version=PLACEMENT_MICROVERSION,
            )
            # Build the proxies now with the real factory; the connection
            # caches them, so the test-wide OpenStackSDKFixture stub stays in
            # place for nova's own code.
            with _real_sdk_proxies():
                conn.compute
                conn.placement
        self.addCleanup(conn.close)
        return conn

    # -- cloud building helpers ---------------------------------------------

    def create_aggregate(self, name, hosts=(), availability_zone=None,
                         metadata=None):
        """Create a host aggregate, add ``hosts`` and set ``metadata``."""
        body = {'name': name}
        if availability_zone:
            body['availability_zone'] = availability_zone
        agg = self.admin_api.post_aggregate({'aggregate': body})
        for host in hosts:
            agg = self.admin_api.post_aggregate_action(
                agg['id'], {'add_host': {'host': host}})
        if metadata:
            agg = self.admin_api.post_aggregate_action(
                agg['id'], {'set_metadata': {'metadata': metadata}})
        return agg

    def create_server_group(self, name, policy, rules=None):
        """Create a server group (2.64 body: single ``policy`` + ``rules``)."""
        body = {'name': name, 'policy': policy}
        if rules:
            body['rules'] = rules
        return self.admin_api.post_server_groups(body)

    def boot_servers(self, host, count, flavor_id=None, group_id=None,
                     name_prefix=None, image_id=None, wait=True):
        """Boot ``count`` servers onto ``host`` and wait for ACTIVE.

        Uses ``availability_zone='nova:<host>'`` (forced host: placement is
        still claimed but scheduler filters are skipped, so it is fast and
        lets tests build deliberately "bad" placements) with multi-create
        (``min_count == max_count == count``). With ``group_id`` the servers
        become members of that server group; the compute's late group-policy
        check still runs, so more than one anti-affinity member on one host
        ends in ERROR (which fails the wait). Names are ``name_prefix`` for a
        single server, ``<name_prefix>-1..N`` otherwise. Returns the server
        dicts (``GET /servers/detail``) sorted by name; with ``wait=False``
        returns the reservation id (see ``wait_for_reservation``), which
        lets callers submit every host's batch before waiting.
        """
        name_prefix = name_prefix or 'srv-%s' % host
        body = {
            'name': name_prefix,
            'imageRef': image_id or DEFAULT_IMAGE_ID,
            'flavorRef': flavor_id or DEFAULT_FLAVOR_ID,
            'networks': 'none',
            'availability_zone': self._forced_az(host),
            'min_count': count,
            'max_count': count,
            'return_reservation_id': True,
        }
        req = {'server': body}
        if group_id:
            req['os:scheduler_hints'] = {'group': group_id}
        resp = self.admin_api.api_post('/servers', req).body
        rid = resp['reservation_id']
        if not wait:
            return rid
        return self.wait_for_reservation(rid, count)

    def _forced_az(self, host):
        return 'nova:%s' % host

    def wait_for_reservation(self, reservation_id, count,
                             status='ACTIVE'):
        deadline = time.time() + self.wait_timeout
        while True:
            servers = self.admin_api.get_servers(
                search_opts={'reservation_id': reservation_id,
                             'all_tenants': 1})
            done = [s for s in servers if s['status'] == status]
            bad = [s for s in servers if s['status'] == 'ERROR']
            if bad:
                self.fail('%d servers of %s went to ERROR: %s' % (
                    len(bad), reservation_id, bad[0].get('fault')))
            if len(done) == count:
                return sorted(done, key=lambda s: s['name'])
            if time.time() > deadline:
                self.fail('timed out waiting for %d %s servers (%d ready)'
                          % (count, status, len(done)))
            time.sleep(self.poll_interval)

    def wait_for_server(self, server_id, predicate, timeout=None):
        """Poll ``GET /servers/{id}`` until ``predicate(server)``."""
        deadline = time.time() + (timeout or self.wait_timeout)
        while True:
            server = self.admin_api.get_server(server_id)
            if predicate(server):
                return server
            if time.time() > deadline:
                self.fail('timed out waiting on server %s: %s' % (
                    server_id, server))
            time.sleep(self.poll_interval)

    def wait_for_migration(self, server_id, statuses, timeout=None):
        """Poll ``GET /os-migrations`` for the server's newest migration."""
        deadline = time.time() + (timeout or self.wait_timeout)
        while True:
            migs = [m for m in self.admin_api.get_migrations()
                    if m['instance_uuid'] == server_id]
            migs.sort(key=lambda m: m['id'])
            if migs and migs[-1]['status'] in statuses:
                return migs[-1]
            if time.time() > deadline:
                self.fail('timed out waiting for migration of %s in %s: %s'
                          % (server_id, statuses, migs))
            time.sleep(self.poll_interval)

    def host_of(self, server_id):
        return self.admin_api.get_server(server_id)[
            'OS-EXT-SRV-ATTR:host']

    def placement_rp_uuid(self, host):
        return self._get_provider_uuid_by_host(host)


@contextlib.contextmanager
def _real_sdk_proxies():
    sd = service_description.ServiceDescription
    current = sd.__dict__.get('_make_proxy')
    sd._make_proxy = _REAL_MAKE_PROXY
    try:
        yield
    finally:
        sd._make_proxy = current
