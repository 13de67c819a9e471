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


"""Planners turn a fleet and its metrics into an ordered list of moves.

Planners are plugins in the stevedore namespace ``nova_kronos.planners``
(``spread``, ``pack``); each is a class taking ``settings`` (a
:class:`Settings`) and keyword options, and offering
``plan(fleet, policy_set, snapshot, max_migrations, oracle=None,
memory=None) -> Plan`` (``memory``: a :class:`nova_kronos.history.Memory`
built from Nova's migration records). :mod:`nova_kronos.planner.drain`
plans the evacuation of named hosts with the same constraints.

This package is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import dataclasses

NAMESPACE = 'nova_kronos.planners'

#: Aggressiveness levels, numbered as VMware DRS numbers its migration
#: threshold (1 most conservative, 5 most aggressive): level ->
#: ``(tolerated imbalance, smallest gain)``. An aggregate whose combined
#: imbalance is at or below the tolerated one is left alone (unless
#: ``target_imbalance`` says otherwise), and a move must gain at least the
#: smallest gain (see :func:`gain`). At every level a move that takes load
#: off a host above a policy's threshold qualifies with any positive gain;
#: level 1 plans only those.
LEVELS = {
    1: (None, None),
    2: (0.10, 0.02),
    3: (0.05, 0.005),
    4: (0.02, 0.002),
    5: (0.0, 0.0005),
}

#: What one live migration costs beyond the GiB it copies, in GiB: the
#: fixed part (claim, switch-over pause, cleanup) counted as one GiB, so
#: that the cost of moving a tiny server is not taken as nothing.
MIGRATION_OVERHEAD_GIB = 1.0


@dataclasses.dataclass(frozen=True)
class Settings:
    """How far and at what price a planner goes.

    :ivar aggressiveness: 1-5, see :data:`LEVELS`.
    :ivar target_imbalance: stop balancing an aggregate once its combined
        imbalance is at or below this (None: the level's tolerated
        imbalance).
    :ivar migration_cost: rank moves by gain per GiB copied (plus
        :data:`MIGRATION_OVERHEAD_GIB`) instead of by gain alone.
    :ivar max_migrated_gib: largest total of GiB copied by one plan (None:
        no limit).
    :ivar shared_storage: instances' disks are on shared storage (Ceph
        RBD, NFS): a live migration copies RAM only. Otherwise a server
        booted from an image (not from a volume) needs a block migration
        that copies its root disk too.
    :ivar migration_rate: MiB/s assumed for a duration estimate.
    :raises ValueError: a value out of range (the message names it).
    """

    aggressiveness: int = 3
    target_imbalance: float = None
    migration_cost: bool = True
    max_migrated_gib: float = None
    shared_storage: bool = False
    migration_rate: float = 1000.0

    def __post_init__(self):
        if self.aggressiveness not in LEVELS:
            raise ValueError('aggressiveness must be 1 to 5, got %r'
                             % (self.aggressiveness,))
        if self.target_imbalance is not None and not (
                0.0 <= self.target_imbalance <= 0.5):
            raise ValueError('target imbalance must be within [0, 0.5], '
                             'got %r' % (self.target_imbalance,))
        if self.max_migrated_gib is not None and not (
                self.max_migrated_gib >= 0):
            raise ValueError('max migrated GiB must be >= 0, got %r'
                             % (self.max_migrated_gib,))
        if not self.migration_rate > 0:
            raise ValueError('migration rate must be > 0 MiB/s, got %r'
                             % (self.migration_rate,))

    @property
    def relieve_only(self):
        """Level 1: only moves off hosts above a policy's threshold."""
        return LEVELS[self.aggressiveness][1] is None

    @property
    def tolerated_imbalance(self):
        """Combined imbalance at or below which an aggregate is left be."""
        if self.target_imbalance is not None:
            return self.target_imbalance
        tolerated = LEVELS[self.aggressiveness][0]
        return 0.5 if tolerated is None else tolerated

    @property
    def min_gain(self):
        """Smallest :func:`gain` of a move (inf at level 1)."""
        g = LEVELS[self.aggressiveness][1]
        return float('inf') if g is None else g

    def move_gib(self, server):
        """``(GiB copied, block migration?)`` for live-migrating ``server``.

        RAM always; the root disk too when the server was booted from an
        image and storage is not shared (Nova's ``block_migration='auto'``
        chooses a block migration when the disk is not on shared storage;
        a volume-backed server has no image and no local root disk).
        """
        gib = (server.memory_mb or 0) / 1024.0
        block = (not self.shared_storage and server.image_id is not None
                 and (server.flavor_disk_gb or 0) > 0)
        if block:
            gib += server.flavor_disk_gb
        return gib, block

    def seconds(self, gib):
        """Estimated seconds to copy ``gib`` GiB at ``migration_rate``."""
        return gib * 1024.0 / self.migration_rate


def gain(imbalance_before, imbalance_after, hosts):
    """A move's gain in host-load units, the same at every fleet size.

    ``hosts * (I_before - I_after) / 2``. One move changes only two hosts,
    so its effect on a standard deviation over ``hosts`` hosts shrinks as
    ``1/hosts``; multiplying back makes one threshold mean the same at 20
    and at 1000 hosts. For one policy, moving share ``a`` from a host one
    standard deviation above the mean to one below gains ``a - a^2 /
    (2 sigma)`` to first order: about the share of a host's load moved.

    :param imbalance_before: float or array, combined imbalance before.
    :param imbalance_after: float or array, after the move.
    :param hosts: number of hosts the imbalance is taken over.
    :returns: float or array.
    """
    return hosts * (imbalance_before - imbalance_after) / 2.0


@dataclasses.dataclass
class Move:
    """One planned live migration.

    ``imbalance_before`` / ``imbalance_after`` are the combined imbalance of
    the move's aggregate just before and just after this move (the moves of
    a plan are applied in order).
    """

    server_id: str
    server_name: str
    source: str
    destination: str
    aggregate: str
    reason: str
    imbalance_before: float
    imbalance_after: float
    #: GiB the live migration copies: the flavor's RAM, plus its root disk
    #: when the move needs a block migration.
    gib: float = 0.0
    block_migration: bool = False
    #: ``gib`` at :attr:`Settings.migration_rate` (a lower bound: pages
    #: the guest dirties while it is copied are sent again).
    estimated_seconds: float = 0.0


@dataclasses.dataclass
class AggregateReport:
    """Per-aggregate loads and imbalance before and after the plan.

    ``loads_before`` / ``loads_after`` map policy -> host -> load (hosts
    with complete data only); ``rejections`` maps a constraint name to the
    number of candidate moves it rejected in the last planning step; with
    a feasibility oracle, Nova's rules appear under their own names
    (``Placement``, a filter class name), counting the candidates whose
    verdict was asked of Nova.
    """

    name: str
    hosts: list
    imbalance_before: float
    imbalance_after: float
    dispersion_before: dict
    dispersion_after: dict
    loads_before: dict
    loads_after: dict
    rejections: dict = dataclasses.field(default_factory=dict)
    #: Hosts the plan empties (pack and drain planners), in plan order.
    freed_hosts: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Plan:
    """The result of planning: moves in order, reports and exclusions.

    ``exclusions`` is a list of ``(kind, name, reason)`` for hosts and
    servers left out of planning (no data, service down, not ACTIVE, rules
    that cannot be evaluated, no destination Nova accepts, ...).
    ``oracle_queries`` counts the (server, host) pairs whose feasibility was
    asked of Nova's rules (0 without an oracle); ``feasibility`` says which
    oracle checked the moves (``mode``, ``rules`` evaluated, enabled filters
    ``not_evaluated``), or None. ``overlay`` lists the recent live
    migrations laid over the measured loads before planning, one dict each:
    ``server_id``, ``source``, ``destination``, ``state`` (``'in
    progress'`` or ``'completed'``), ``policies`` (names overlaid) and,
    when a policy had no share for the server, ``skipped`` (why).
    ``memory`` is left for the caller: a summary of the
    :class:`nova_kronos.history.Memory` planned with (``summary()``), or
    None.
    """

    moves: list = dataclasses.field(default_factory=list)
    aggregates: list = dataclasses.field(default_factory=list)
    exclusions: list = dataclasses.field(default_factory=list)
    oracle_queries: int = 0
    feasibility: dict = None
    overlay: list = dataclasses.field(default_factory=list)
    memory: dict = None
    #: ``(server_id, reason)`` for servers a drain had to leave behind.
    unmovable: list = dataclasses.field(default_factory=list)
    #: ``(server_id, reason)`` for servers a drain moves once room a
    #: planned move makes is seen by Nova's Placement (the next round of
    #: an executed run plans them).
    waiting: list = dataclasses.field(default_factory=list)
    #: ``(server_id, reason)`` for servers a drain left for a later run
    #: because the migration or GiB budget was spent.
    deferred: list = dataclasses.field(default_factory=list)
    #: Which planner made it: ``spread``, ``pack`` or ``drain``.
    planner: str = None

    @property
    def migrated_gib(self):
        """GiB every planned move copies, summed."""
        return sum(m.gib for m in self.moves)

    @property
    def estimated_seconds(self):
        """Estimated seconds of the moves run one after the other."""
        return sum(m.estimated_seconds for m in self.moves)


class PlannerError(Exception):
    """The planner cannot be loaded or cannot plan."""


def load_planner(name, **options):
    """Load a planner plugin by name through stevedore.

    :raises PlannerError: no such plugin.
    """
    from stevedore import driver
    try:
        mgr = driver.DriverManager(NAMESPACE, name, invoke_on_load=True,
                                   invoke_kwds=options)
    except Exception as e:
        raise PlannerError('cannot load planner %r from namespace %s: %s'
                           % (name, NAMESPACE, e)) from e
    return mgr.driver
