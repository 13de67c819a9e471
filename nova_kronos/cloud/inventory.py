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


"""Read the fleet from the Nova and Placement APIs through openstacksdk.

Calls (compute microversion negotiated up to ``2.latest``):

* ``GET /os-aggregates`` - aggregates, their hosts, AZ and metadata;
* ``GET /os-services?binary=nova-compute`` - state (up/down), status
  (enabled/disabled), ``forced_down``;
* ``GET /os-hypervisors/detail`` - hypervisor id = compute node UUID =
  Placement resource provider UUID (microversion >= 2.53);
* ``GET /resource_providers/{uuid}/inventories`` and ``/usages``
  (Placement, through openstacksdk's placement proxy:
  ``resource_provider_inventories`` and ``fetch_resource_provider_usages``)
  - VCPU and MEMORY_MB totals, reserved, allocation ratios and usage;
* ``GET /servers/detail?all_tenants=1`` - host, status, task state, image,
  project and the embedded flavor (vcpus, ram, disk, extra specs;
  microversion >= 2.47);
* ``GET /os-server-groups?all_projects=1`` - policy, rules
  (``max_server_per_host``, microversion >= 2.64) and members.
"""

from oslo_log import log as logging

from nova_kronos import fleet

LOG = logging.getLogger(__name__)


class InventoryError(Exception):
    """The inventory cannot be read from the Nova or Placement API."""


class ScopeError(InventoryError):
    """A requested aggregate does not exist, or the scope has no host."""


def provider_resources(conn, provider_id):
    """Inventories and usages of one resource provider, from Placement.

    :param conn: openstacksdk Connection.
    :param provider_id: resource provider UUID (= Nova compute node UUID).
    :returns: ``(inventories, usages)``: ``{resource_class:
        ResourceProviderInventory}`` (``total``, ``reserved``,
        ``allocation_ratio``, ...) and ``{resource_class: used}``.
    :raises InventoryError: on any HTTP or transport error.
    """
    try:
        inventories = {inv.resource_class: inv for inv in
                       conn.placement.resource_provider_inventories(
                           provider_id)}
        usages = conn.placement.fetch_resource_provider_usages(
            provider_id).usages or {}
    except Exception as e:
        raise InventoryError('Placement read of resource provider %s '
                             'failed: %s' % (provider_id, e)) from e
    return inventories, usages


def _capacity(inventories, resource_class):
    """``(total, usable)`` of one resource class of a provider.

    ``usable = (total - reserved) * allocation_ratio``, Placement's
    capacity formula (placement/objects/resource_provider.py).
    """
    inv = inventories.get(resource_class)
    if inv is None:
        return 0.0, 0.0
    total = float(inv.total or 0)
    ratio = 1.0 if inv.allocation_ratio is None else float(
        inv.allocation_ratio)
    return total, (total - float(inv.reserved or 0)) * ratio


def read_fleet(conn, aggregates=(), availability_zone=None, hosts=()):
    """Build a :class:`nova_kronos.fleet.Fleet` for the requested scope.

    :param conn: ``openstack.connection.Connection`` with admin rights.
    :param aggregates: aggregate names; empty means every aggregate (or,
        with ``hosts``, every aggregate holding one of them).
    :param availability_zone: keep only aggregates in this zone.
    :param hosts: host names that must be in scope (a drain's hosts).
    :returns: :class:`nova_kronos.fleet.Fleet` whose ``aggregates`` are the
        scope and whose ``hosts`` are every host of those aggregates.
    :raises ScopeError: a named aggregate does not exist, the scope is
        empty, or a host of ``hosts`` is in no aggregate of the scope.
    :raises InventoryError: an API call fails.
    """
    try:
        return _read(conn, list(aggregates), availability_zone, hosts)
    except InventoryError:
        raise
    except Exception as e:
        raise InventoryError('cannot read the inventory from Nova: %s'
                             % e) from e


def scope_names(conn, aggregates=(), availability_zone=None, hosts=()):
    """Names of the aggregates a run over this scope covers.

    The same resolution as :func:`read_fleet`, reading only the aggregates
    (the rebalance locks are taken on these names before the inventory is
    read).

    :raises ScopeError: a named aggregate does not exist.
    :raises InventoryError: the API call fails.
    """
    try:
        all_aggs = list(conn.compute.aggregates())
    except Exception as e:
        raise InventoryError('cannot read the host aggregates from Nova: %s'
                             % e) from e
    return [a.name for a in _chosen(all_aggs, list(aggregates),
                                    availability_zone, hosts)]


def _chosen(all_aggs, wanted, availability_zone, hosts=()):
    by_name = {a.name: a for a in all_aggs}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        raise ScopeError('no host aggregate named %s (known: %s)' % (
            ', '.join(missing), ', '.join(sorted(by_name)) or 'none'))
    chosen = [by_name[n] for n in wanted] if wanted else all_aggs
    if hosts and not wanted:
        chosen = [a for a in chosen if set(a.hosts or ()) & set(hosts)]
    if availability_zone:
        chosen = [a for a in chosen
                  if a.availability_zone == availability_zone]
    covered = {h for a in chosen for h in a.hosts or ()}
    outside = [h for h in hosts if h not in covered]
    if outside:
        raise ScopeError(
            'host %s is in no host aggregate of the scope (aggregates=%s, '
            'availability_zone=%s): a drain moves servers inside the '
            "host's aggregates" % (', '.join(outside),
                                   ','.join(wanted) or 'all',
                                   availability_zone or 'any'))
    return chosen


def _read(conn, wanted, availability_zone, hosts=()):
    all_aggs = list(conn.compute.aggregates())
    chosen = _chosen(all_aggs, wanted, availability_zone, hosts)
    model = {a.name: fleet.Aggregate(
        name=a.name, hosts=tuple(a.hosts or ()),
        availability_zone=a.availability_zone,
        metadata=dict(a.metadata or {})) for a in all_aggs}
    scope = [model[a.name] for a in chosen]
    if not any(a.hosts for a in scope):
        raise ScopeError('no host aggregate with hosts in scope '
                         '(aggregates=%s, availability_zone=%s)'
                         % (','.join(wanted) or 'all',
                            availability_zone or 'any'))
    hosts_in_scope = {h for a in scope for h in a.hosts}

    # A host's zone is the zone of any aggregate it is in (Nova allows one).
    zone_of = {}
    for a in all_aggs:
        if a.availability_zone:
            for h in a.hosts or ():
                zone_of[h] = a.availability_zone

    services = {s.host: s for s in conn.compute.services(
        binary='nova-compute')}
    hypervisors = {}
    for hv in conn.compute.hypervisors(details=True):
        host = (hv.service_details or {}).get('host') or hv.name
        hypervisors.setdefault(host, []).append(hv)

    hosts = []
    for name in sorted(hosts_in_scope):
        svc = services.get(name)
        reason, disabled = None, False
        if svc is None:
            reason = 'no nova-compute service'
        elif svc.is_forced_down:
            reason = 'nova-compute forced down'
        elif svc.state != 'up':
            reason = 'nova-compute is %s' % svc.state
        elif svc.status != 'enabled':
            reason = 'nova-compute is disabled (%s)' % (
                svc.disabled_reason or 'no reason given')
            disabled = True
        host = fleet.Host(name=name, availability_zone=zone_of.get(name),
                          usable=reason is None, unusable_reason=reason,
                          disabled=disabled)
        for hv in hypervisors.get(name, ()):
            host.node_uuids += (hv.id,)
            host.node_names += (hv.name,)
            inv, usage = provider_resources(conn, hv.id)
            vcpus, vcpus_cap = _capacity(inv, 'VCPU')
            mem, mem_cap = _capacity(inv, 'MEMORY_MB')
            host.vcpus += vcpus
            host.vcpus_capacity += vcpus_cap
            host.vcpus_used += float(usage.get('VCPU', 0))
            host.memory_mb += mem
            host.memory_mb_capacity += mem_cap
            host.memory_mb_used += float(usage.get('MEMORY_MB', 0))
        if not hypervisors.get(name) and host.usable:
            host.usable = False
            host.unusable_reason = 'no hypervisor record'
        hosts.append(host)

    servers = []
    for s in conn.compute.servers(details=True, all_projects=True):
        if s.compute_host not in hosts_in_scope:
            continue
        flavor = s.flavor or {}
        image = s.image or {}
        servers.append(fleet.Server(
            id=s.id, name=s.name, host=s.compute_host,
            vcpus=int(flavor.get('vcpus') or 0),
            memory_mb=int(flavor.get('ram') or 0),
            status=s.status, task_state=s.task_state,
            flavor_name=flavor.get('original_name') or flavor.get('name'),
            flavor_extra_specs=dict(flavor.get('extra_specs') or {}),
            flavor_disk_gb=int(flavor.get('disk') or 0),
            image_id=image.get('id') or None,
            project_id=s.project_id))

    groups = []
    for g in conn.compute.server_groups(all_projects=True):
        policy = g.policy or (g.policies or [None])[0]
        rules = g.rules or {}
        max_per_host = rules.get('max_server_per_host')
        groups.append(fleet.ServerGroup(
            id=g.id, name=g.name, policy=policy,
            members=tuple(g.member_ids or ()),
            max_server_per_host=int(max_per_host) if max_per_host else None))
    return fleet.Fleet.build(hosts, servers, groups, scope,
                             known_hosts=services,
                             all_aggregates=list(model.values()))
