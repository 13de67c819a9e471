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


"""Feasibility oracles: Nova's own scheduling rules, asked per move.

A live migration to an explicit host without ``force`` (API microversion
>= 2.30) is checked by Nova the way a boot is: the API sets
``requested_destination`` to the host, the conductor
(``nova/conductor/tasks/live_migrate.py``) resets forced hosts, adds the
source cell and ignores the source host, and the scheduler
(``nova/scheduler/manager.py select_destinations``) runs the request
filters, asks Placement for allocation candidates ``in_tree`` of the
destination, then runs ``[filter_scheduler] enabled_filters`` on the
destination's HostState with those candidates attached. The oracles here
call those same Nova functions instead of re-implementing them:

:class:`SchedulerOracle` (nova.conf database access, as nova-manage has)
    RequestSpec from the API database, ``request_filter.process_reqspec``,
    ``scheduler.utils.resources_from_request_spec`` and
    ``SchedulerReportClient.get_allocation_candidates``; HostStates from
    ``HostManager.get_host_states_by_uuids`` and every enabled filter
    through ``HostFilterHandler``, one filter at a time so a refusal names
    its filter. Planned moves are consumed on the destination HostState
    (``consume_from_request``) and on the Placement usage of the chosen
    allocation request, so NUMA, PCI and custom resource room stays right
    across moves. Resources a move frees on its source are not credited
    back (a conservative choice: it can miss a move, never plan a refused
    one).

:class:`ApiOracle` (openstacksdk only)
    The RequestSpec is rebuilt from the API (embedded flavor with extra
    specs, Glance image properties, project) with
    ``RequestSpec.from_components``; Placement is asked through the API
    with Nova's ``ResourceRequest`` query; the filters that need only
    aggregate metadata, the request and host identity run on a HostState
    built from the API. Servers whose requirements need host internals the
    API does not expose (dedicated CPUs, NUMA, huge pages, PCI, vGPU, image
    properties checked against the hypervisor's supported instances,
    ``capabilities:`` extra specs) are left out of planning, each with its
    reason.

Both skip the server-group filters and nova-kronos' own filter: the
planner's server-group and threshold constraints model those across the
moves of a plan, where Nova's would see the cloud before the plan.
Neither evaluates what only the destination compute checks in
``check_can_live_migrate_destination`` (CPU model compatibility, shared
storage) nor Neutron port resource requests.
"""

import copy
import json

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Filters left to the planner's own constraints (see module docstring).
MODELLED_BY_PLANNER = {
    'ServerGroupAntiAffinityFilter': 'server-group constraint',
    'ServerGroupAffinityFilter': 'server-group constraint',
    'PrometheusFilter': 'threshold constraint',
}

#: Filters the API oracle runs: they read only aggregate metadata, the
#: request and the host's identity, all of which the API exposes.
API_EVALUABLE_FILTERS = frozenset((
    'AggregateInstanceExtraSpecsFilter', 'AggregateImagePropertiesIsolation',
    'AggregateMultiTenancyIsolation', 'AvailabilityZoneFilter',
))

#: Filters that pass any request lacking the listed extra spec / image
#: property prefixes: the API oracle leaves out servers that have them.
API_CONDITIONAL_FILTERS = {
    'ImagePropertiesFilter': (
        (), ('hw_architecture', 'architecture', 'img_hv_type',
             'hypervisor_type', 'hw_vm_mode', 'vm_mode',
             'img_hv_requested_version', 'hypervisor_version_requires')),
    'ComputeCapabilitiesFilter': (('capabilities:',), ()),
    'NUMATopologyFilter': (
        ('hw:cpu_policy', 'hw:numa_', 'hw:mem_page_size', 'hw:cpu_thread',
         'hw:pmem', 'hw:emulator_threads'),
        ('hw_cpu_policy', 'hw_numa_', 'hw_mem_page_size', 'hw_cpu_thread')),
    'PciPassthroughFilter': (('pci_passthrough:',), ()),
}

#: Extra specs whose resources live on nested providers the API oracle
#: cannot tie to a server (vGPU, accelerators, persistent memory).
API_UNEVALUABLE_SPECS = ('resources:VGPU', 'resources:PGPU',
                         'accel:device_profile', 'hw:pmem')

PLACEMENT = 'Placement'


class RulesUnavailable(Exception):
    """Nova's rules cannot be evaluated in this process."""


def _strip_changes(prim):
    """An object primitive without change tracking, for stable keys."""
    if isinstance(prim, dict):
        return {k: _strip_changes(v) for k, v in prim.items()
                if k != 'nova_object.changes'}
    if isinstance(prim, list):
        return [_strip_changes(v) for v in prim]
    return prim


def _signature(spec):
    """The parts of a RequestSpec Nova's answer depends on, as a string.

    Instance identity, group membership and move bookkeeping are dropped;
    what is left (flavor and extra specs, image, project, hints, NUMA and
    PCI requests, zone, ...) is identical for servers Nova treats alike.
    """
    prim = _strip_changes(spec.obj_to_primitive())['nova_object.data']
    for key in ('instance_uuid', 'id', 'ignore_hosts', 'instance_group',
                'requested_destination', 'num_instances', 'retry',
                'user_id', 'security_groups', 'network_metadata',
                'requested_networks'):
        prim.pop(key, None)
    hints = dict(prim.get('scheduler_hints') or {})
    hints.pop('group', None)
    prim['scheduler_hints'] = hints
    return json.dumps(prim, sort_keys=True, default=str)


class _Oracle:
    """What both oracles share.

    The cache of Placement answers per (signature, host), the usage planned
    moves add to providers, and the filter pass over one HostState.
    """

    mode = None
    #: Enabled filters this oracle cannot evaluate (listed in reports).
    not_evaluated = ()

    def __init__(self, fleet, filters, handler):
        self.fleet = fleet
        self.filters = filters
        self.handler = handler
        self._specs = {}        # signature -> prepared RequestSpec
        self._server_sig = {}   # server id -> signature
        # (signature, host) -> (spec for that host, alloc_reqs, summaries):
        # prepared and asked once; a re-ask after a planned move only
        # re-checks room and re-runs the filters.
        self._candidates = {}
        self._chosen = {}       # (signature, host) -> allocation request
        self._planned = {}      # provider uuid -> {resource class: amount}

    @property
    def rules(self):
        """Names of the rules this oracle evaluates."""
        return [PLACEMENT] + [type(f).__name__ for f in self.filters]

    # -- oracle protocol --------------------------------------------------

    def excluded(self, servers):
        return {}

    def signatures(self, servers):
        out = []
        for server in servers:
            try:
                spec = self._spec_for(server)
                sig = _signature(spec)
                self._specs.setdefault(sig, spec)
            except Exception as e:
                # Never moved: every verdict for it is 'unevaluable'.
                LOG.warning('kronos: cannot rebuild the scheduling request '
                            'of server %s: %s', server.id, e)
                sig = ('unevaluable', server.id, str(e))
            self._server_sig[server.id] = sig
            out.append(sig)
        return out

    def evaluate(self, pairs):
        out = []
        for server, host in pairs:
            sig = self._server_sig.get(server.id)
            if sig is None:
                sig = self.signatures([server])[0]
            if isinstance(sig, tuple):
                out.append(('unevaluable', sig[2]))
                continue
            try:
                out.append(self._evaluate(sig, host))
            except Exception as e:
                # Placement unreachable, a filter raising, ...: not a move
                # we can vouch for.
                out.append(('unevaluable', str(e)))
        return out

    def record_move(self, server, source, destination):
        sig = self._server_sig.get(server.id)
        alloc = self._chosen.get((sig, destination))
        if alloc is None:
            return [destination]
        for rp, item in alloc['allocations'].items():
            planned = self._planned.setdefault(rp, {})
            for rc, amount in item['resources'].items():
                planned[rc] = planned.get(rc, 0) + amount
        spec = copy.deepcopy(self._candidates[(sig, destination)][0])
        self._consume(spec, destination, alloc)
        return [destination]

    # -- shared steps -------------------------------------------------------

    def _evaluate(self, sig, host):
        key = (sig, host)
        if key not in self._candidates:
            spec = self._spec_at(sig, host)
            self._candidates[key] = (spec,) + self._allocation_candidates(
                spec, host)
        spec, alloc_reqs, summaries = self._candidates[key]
        if isinstance(alloc_reqs, str):
            return (PLACEMENT, alloc_reqs)
        fitting = [a for a in alloc_reqs if self._fits(a, summaries)]
        if not fitting:
            return (PLACEMENT, 'no room left after the moves planned '
                               'before this one')
        host_state = self._host_state(host)
        host_state.allocation_candidates = copy.deepcopy(fitting)
        for f in self.filters:
            if not self.handler.get_filtered_objects([f], [host_state],
                                                     spec, 0):
                return (type(f).__name__, '')
        if not host_state.allocation_candidates:
            return (PLACEMENT, 'no allocation candidate left after the '
                               'filters')
        self._chosen[key] = host_state.allocation_candidates[0]
        return None

    def _fits(self, alloc_req, summaries):
        """Room for ``alloc_req`` once planned moves are counted.

        ``summaries`` is Placement's ``provider_summaries``: per provider
        and resource class, ``capacity`` ((total - reserved) x allocation
        ratio) and ``used``.
        """
        for rp, item in alloc_req['allocations'].items():
            planned = self._planned.get(rp)
            if not planned:
                continue
            res = summaries.get(rp, {}).get('resources', {})
            for rc, amount in item['resources'].items():
                if rc not in res:
                    continue
                free = res[rc]['capacity'] - res[rc]['used'] - planned.get(
                    rc, 0)
                if amount > free:
                    return False
        return True

    @staticmethod
    def _no_candidates_detail(query):
        parts = [p for p in query.split('&')
                 if not p.startswith(('in_tree', 'limit'))]
        return 'no allocation candidate for %s' % '&'.join(parts)


class SchedulerOracle(_Oracle):
    """Nova's scheduler rules, in-process, with nova.conf's database access.

    :param fleet: :class:`nova_kronos.fleet.Fleet` (hosts in scope).
    :param context: a Nova admin RequestContext (default: a new one).
    :raises RulesUnavailable: Nova's configuration or databases cannot be
        used (e.g. no ``[api_database] connection``).
    """

    mode = 'scheduler'

    def __init__(self, fleet, context=None):
        from nova import context as nova_context
        from nova import objects
        from nova.scheduler.client import report
        from nova.scheduler import filters as nova_filters
        from nova.scheduler import host_manager

        objects.register_all()
        try:
            self.ctx = context or nova_context.get_admin_context()
            self.host_manager = host_manager.HostManager()
        except Exception as e:
            raise RulesUnavailable(
                "cannot load Nova's host manager with this nova.conf: %s"
                % e) from e
        enabled = [f for f in self.host_manager.enabled_filters
                   if type(f).__name__ not in MODELLED_BY_PLANNER]
        super().__init__(fleet, enabled, nova_filters.HostFilterHandler())
        self.report = report.SchedulerReportClient()
        self._host_states = None
        self._dirty = set()

    def _spec_for(self, server):
        from nova import exception
        from nova import objects
        try:
            spec = objects.RequestSpec.get_by_instance_uuid(self.ctx,
                                                            server.id)
            cell = objects.InstanceMapping.get_by_instance_uuid(
                self.ctx, server.id).cell_mapping
        except exception.NotFound as e:
            raise RulesUnavailable('no RequestSpec for server %s: %s'
                                   % (server.id, e)) from e
        # As the conductor prepares a live migration.
        spec.reset_forced_destinations()
        spec.generate_request_groups_from_pci_requests()
        spec.requested_destination = objects.Destination(cell=cell)
        spec.ignore_hosts = [server.host]
        return spec

    def _spec_at(self, sig, host):
        from nova import objects
        from nova.scheduler import request_filter
        spec = copy.deepcopy(self._specs[sig])
        cell = spec.requested_destination.cell
        hs = self._host_state(host)
        spec.requested_destination = objects.Destination(
            host=host, node=hs.nodename, cell=cell)
        try:
            request_filter.process_reqspec(self.ctx, spec)
        except Exception as e:
            raise RulesUnavailable('request filters: %s' % e) from e
        return spec

    def _allocation_candidates(self, spec, host):
        from nova import exception
        from nova.scheduler import utils
        try:
            resources = utils.resources_from_request_spec(
                self.ctx, spec, self.host_manager,
                enable_pinning_translate=True)
        except exception.NoValidHost as e:
            return str(e), None
        res = self.report.get_allocation_candidates(self.ctx, resources)
        alloc_reqs, summaries, _ = res or (None, None, None)
        alloc_reqs, summaries = list(alloc_reqs or ()), dict(summaries or {})
        if resources.cpu_pinning_requested:
            # As select_destinations: also ask with VCPU instead of PCPU
            # for hosts not reporting PCPU yet.
            from nova import conf as nova_conf
            if not nova_conf.CONF.workarounds.disable_fallback_pcpu_query:
                fallback = utils.resources_from_request_spec(
                    self.ctx, spec, self.host_manager,
                    enable_pinning_translate=False)
                more = self.report.get_allocation_candidates(self.ctx,
                                                             fallback)
                if more and more[0]:
                    alloc_reqs.extend(more[0])
                    summaries.update(more[1] or {})
        if not alloc_reqs:
            return self._no_candidates_detail(resources.to_querystring()), \
                None
        return alloc_reqs, summaries

    def _host_state(self, host):
        if self._host_states is None:
            uuids = [u for h in self.fleet.hosts.values()
                     for u in h.node_uuids]
            self._host_states = {
                hs.host: hs for hs in self.host_manager.
                get_host_states_by_uuids(self.ctx, uuids, None)}
        hs = self._host_states.get(host)
        if hs is None:
            raise RulesUnavailable('no compute node of host %s in Nova\'s '
                                   'cell databases' % host)
        if host in self._dirty:
            raise RulesUnavailable('host %s: its state after a planned move '
                                   'could not be computed' % host)
        return hs

    def _consume(self, spec, host, alloc):
        hs = self._host_state(host)
        try:
            from nova.scheduler import utils
            utils.fill_provider_mapping_based_on_allocation(
                self.ctx, self.report, spec, alloc['allocations'])
            hs.consume_from_request(spec)
        except Exception as e:
            LOG.warning('kronos: cannot account a planned move on host %s '
                        '(%s); no further move goes there in this plan',
                        host, e)
            self._dirty.add(host)


class ApiOracle(_Oracle):
    """What the Nova and Placement APIs let us evaluate of Nova's rules.

    :param conn: openstacksdk Connection (admin).
    :param fleet: :class:`nova_kronos.fleet.Fleet`; its hosts carry
        ``node_uuids`` and aggregates.
    :param enabled_filters: ``[filter_scheduler] enabled_filters``.
    :param image_reader: callable ``image_id -> dict`` with the image's
        ``properties`` (default: Glance through ``conn.image``).
    """

    mode = 'api'
    PLACEMENT_MICROVERSION = '1.36'

    def __init__(self, conn, fleet, enabled_filters, image_reader=None):
        from nova import objects
        from nova.scheduler import filters as nova_filters

        objects.register_all()
        handler = nova_filters.HostFilterHandler()
        classes = {c.__name__: c for c in handler.get_matching_classes(
            ['nova.scheduler.filters.all_filters'])}
        self.enabled = [n for n in enabled_filters
                        if n not in MODELLED_BY_PLANNER]
        self.conditional = [n for n in self.enabled
                            if n in API_CONDITIONAL_FILTERS]
        self.not_evaluated = sorted(
            n for n in self.enabled if n not in API_EVALUABLE_FILTERS
            and n not in API_CONDITIONAL_FILTERS and n != 'ComputeFilter')
        filters = [classes[n]() for n in self.enabled
                   if n in API_EVALUABLE_FILTERS and n in classes]
        super().__init__(fleet, filters, handler)
        self.conn = conn
        self._image_reader = image_reader or self._glance_image
        self._images = {}
        self._host_states = {}

    def _glance_image(self, image_id):
        image = self.conn.image.get_image(image_id)
        return {'id': image.id, 'name': image.name,
                'properties': dict(image.properties or {})}

    def _image(self, image_id):
        if image_id not in self._images:
            try:
                self._images[image_id] = self._image_reader(image_id)
            except Exception as e:
                self._images[image_id] = e
        return self._images[image_id]

    def excluded(self, servers):
        out = {}
        for s in servers:
            why = self._why_unevaluable(s)
            if why:
                out[s.id] = why
        return out

    def _why_unevaluable(self, server):
        specs = server.flavor_extra_specs or {}
        for key in specs:
            if key.startswith(API_UNEVALUABLE_SPECS) or (
                    key.startswith('resources') and 'VGPU' in key):
                return ('flavor extra spec %s needs nested resource '
                        'checks that need database access' % key)
        props = {}
        if server.image_id:
            image = self._image(server.image_id)
            if isinstance(image, Exception):
                return 'image %s cannot be read: %s' % (server.image_id,
                                                        image)
            props = image.get('properties') or {}
        for name in self.conditional:
            spec_prefixes, prop_prefixes = API_CONDITIONAL_FILTERS[name]
            for key in specs:
                if spec_prefixes and key.startswith(spec_prefixes):
                    return ('flavor extra spec %s is checked by %s against '
                            'host internals the API does not expose; needs '
                            'database access' % (key, name))
            for key in props:
                if prop_prefixes and key.startswith(prop_prefixes):
                    return ('image property %s is checked by %s against '
                            'host internals the API does not expose; needs '
                            'database access' % (key, name))
        return None

    def _spec_for(self, server):
        from nova import context as nova_context
        from nova import objects
        image = self._image(server.image_id) if server.image_id else {}
        if isinstance(image, Exception):
            raise RulesUnavailable('image %s: %s' % (server.image_id, image))
        flavor = objects.Flavor(
            name=server.flavor_name or 'unknown',
            flavorid=server.flavor_name or 'unknown',
            vcpus=server.vcpus, memory_mb=server.memory_mb,
            root_gb=server.flavor_disk_gb, ephemeral_gb=0, swap=0,
            extra_specs=dict(server.flavor_extra_specs or {}))
        image_meta = objects.ImageMeta.from_dict(
            {'properties': dict(image.get('properties') or {})})
        spec = objects.RequestSpec.from_components(
            nova_context.get_admin_context(), server.id, image_meta, flavor,
            None, None, {}, None,
            None, project_id=server.project_id, user_id=None)
        spec.is_bfv = not server.image_id
        spec.ignore_hosts = [server.host]
        return spec

    def _spec_at(self, sig, host):
        return self._specs[sig]

    def _allocation_candidates(self, spec, host):
        from nova.scheduler import utils
        resources = utils.ResourceRequest.from_request_spec(spec)
        hs = self._host_state(host)
        resources.get_request_group(None).in_tree = hs.uuid
        query = resources.to_querystring()
        resp = self.conn.placement.get(
            '/allocation_candidates?%s' % query,
            microversion=self.PLACEMENT_MICROVERSION)
        if resp.status_code != 200:
            raise RulesUnavailable('Placement answered %s to GET '
                                   '/allocation_candidates'
                                   % resp.status_code)
        data = resp.json()
        if not data['allocation_requests']:
            return self._no_candidates_detail(query), None
        return data['allocation_requests'], data['provider_summaries']

    def _host_state(self, host):
        from nova import objects
        from nova.scheduler import host_manager
        hs = self._host_states.get(host)
        if hs is None:
            h = self.fleet.hosts[host]
            if not h.node_uuids:
                raise RulesUnavailable('host %s has no hypervisor' % host)
            hs = host_manager.HostState(host, h.node_names[0], None)
            hs.uuid = h.node_uuids[0]
            hs.aggregates = [
                objects.Aggregate(id=i, name=a.name, hosts=list(a.hosts),
                                  metadata=dict(a.metadata))
                for i, a in enumerate(self.fleet.all_aggregates
                                      or self.fleet.aggregates)
                if host in a.hosts]
            self._host_states[host] = hs
        return hs

    def _consume(self, spec, host, alloc):
        """The API filters read nothing a move changes."""


def load(mode, fleet, conn=None, enabled_filters=(), image_reader=None):
    """The oracle for ``mode`` (``scheduler``, ``api``, ``auto``, ``none``).

    ``auto`` uses the scheduler oracle when Nova's configuration in this
    process has an API database connection, else the API oracle.

    :returns: an oracle, or None for ``none``.
    :raises RulesUnavailable: ``scheduler`` mode cannot be used.
    """
    if mode == 'none':
        return None
    if mode == 'auto':
        from nova import conf as nova_conf
        try:
            has_db = bool(nova_conf.CONF.api_database.connection)
        except Exception:
            has_db = False
        mode = 'scheduler' if has_db else 'api'
    if mode == 'scheduler':
        return SchedulerOracle(fleet)
    return ApiOracle(conn, fleet, enabled_filters, image_reader=image_reader)
