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


"""The in-memory model of the hosts and servers a rebalance run looks at.

Plain data only, fed by :mod:`nova_kronos.cloud.inventory` (or a test):
this module is part of the pure core and imports neither Nova nor
openstacksdk. Names follow Nova: a *host* is a nova-compute service host
(``OS-EXT-SRV-ATTR:host``), capacities come from Placement inventories, and
server groups carry Nova's four policies.
"""

import dataclasses

AFFINITY = 'affinity'
ANTI_AFFINITY = 'anti-affinity'
SOFT_AFFINITY = 'soft-affinity'
SOFT_ANTI_AFFINITY = 'soft-anti-affinity'
GROUP_POLICIES = (AFFINITY, ANTI_AFFINITY, SOFT_AFFINITY, SOFT_ANTI_AFFINITY)


@dataclasses.dataclass
class Host:
    """One compute host.

    Capacities are Placement's: ``vcpus`` and ``memory_mb`` are the
    inventory totals (physical), ``*_capacity`` is
    ``(total - reserved) * allocation_ratio`` (what Placement lets be
    allocated) and ``*_used`` the current allocations. ``usable`` is False
    when the nova-compute service is down, disabled or forced down;
    ``unusable_reason`` then says which; ``disabled`` is True when the
    service is up but disabled (its servers can still be live-migrated
    away: a host being drained). ``node_uuids`` / ``node_names``
    are its compute nodes (hypervisor id = Placement root provider UUID,
    hypervisor hostname).
    """

    name: str
    availability_zone: str = None
    vcpus: float = 0.0
    vcpus_capacity: float = 0.0
    vcpus_used: float = 0.0
    memory_mb: float = 0.0
    memory_mb_capacity: float = 0.0
    memory_mb_used: float = 0.0
    usable: bool = True
    unusable_reason: str = None
    disabled: bool = False
    node_uuids: tuple = ()
    node_names: tuple = ()

    @property
    def free_vcpus(self):
        return self.vcpus_capacity - self.vcpus_used

    @property
    def free_memory_mb(self):
        return self.memory_mb_capacity - self.memory_mb_used


@dataclasses.dataclass
class Server:
    """One server (instance). ``host`` is its compute host.

    ``flavor_name`` and ``flavor_extra_specs`` are the server's embedded
    flavor (``original_name``, ``extra_specs``; microversion >= 2.47),
    ``image_id`` its image (None when booted from volume) and
    ``project_id`` its owner: what a feasibility oracle needs to rebuild
    the server's scheduling request.
    """

    id: str
    name: str
    host: str
    vcpus: int
    memory_mb: int
    status: str = 'ACTIVE'
    task_state: str = None
    group_id: str = None
    flavor_name: str = None
    flavor_extra_specs: dict = dataclasses.field(default_factory=dict)
    flavor_disk_gb: int = 0
    image_id: str = None
    project_id: str = None

    @property
    def migratable(self):
        """Only an ACTIVE server with no task in flight is live-migrated."""
        return self.status == 'ACTIVE' and not self.task_state


@dataclasses.dataclass
class ServerGroup:
    """A Nova server group; ``max_server_per_host`` from ``rules`` (2.64)."""

    id: str
    name: str
    policy: str
    members: tuple = ()
    max_server_per_host: int = None

    def __post_init__(self):
        if self.policy not in GROUP_POLICIES:
            raise ValueError('server group %s: unknown policy %r'
                             % (self.id, self.policy))


@dataclasses.dataclass
class Aggregate:
    """A host aggregate: the unit inside which servers are moved."""

    name: str
    hosts: tuple
    availability_zone: str = None
    metadata: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Fleet:
    """Everything one rebalance run needs, indexed by name / id.

    :ivar hosts: dict host name -> :class:`Host`
    :ivar servers: dict server id -> :class:`Server`
    :ivar groups: dict server group id -> :class:`ServerGroup`
    :ivar aggregates: list of :class:`Aggregate` in scope
    :ivar known_hosts: every nova-compute host of the cloud (frozenset),
        in scope or not; empty when unknown
    :ivar all_aggregates: every aggregate of the cloud, in scope or not
        (isolation aggregates overlap the ones balanced)
    """

    hosts: dict
    servers: dict
    groups: dict = dataclasses.field(default_factory=dict)
    aggregates: list = dataclasses.field(default_factory=list)
    known_hosts: frozenset = frozenset()
    all_aggregates: list = dataclasses.field(default_factory=list)

    @classmethod
    def build(cls, hosts, servers, groups=(), aggregates=(),
              known_hosts=(), all_aggregates=()):
        """Index lists of hosts, servers and groups; link servers to groups.

        A server's ``group_id`` is set from the groups' member lists (Nova
        allows a server in at most one group).
        """
        groups = {g.id: g for g in groups}
        servers = {s.id: s for s in servers}
        for g in groups.values():
            for member in g.members:
                if member in servers:
                    servers[member].group_id = g.id
        return cls(hosts={h.name: h for h in hosts}, servers=servers,
                   groups=groups, aggregates=list(aggregates),
                   known_hosts=frozenset(known_hosts),
                   all_aggregates=list(all_aggregates))
