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

Planners are plugins in the stevedore namespace ``nova_kronos.planners``;
each is a class taking keyword options and offering
``plan(fleet, policy_set, snapshot, max_migrations, oracle=None,
memory=None) -> Plan`` (``memory``: a :class:`nova_kronos.history.Memory`
built from Nova's migration records).

This package is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import dataclasses

NAMESPACE = 'nova_kronos.planners'


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
