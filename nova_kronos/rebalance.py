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

"""The rebalance use case: one home for the whole pipeline.

``run()`` does, in this order and nowhere else:

1. load and validate the policies file (``[kronos] policies_file``);
2. load the planner plugin (``[kronos_rebalance] planner``; a drain
   uses :class:`~nova_kronos.planner.drain.DrainPlanner`);
3. connect to Nova and read the inventory of the requested scope;
4. collect the metrics of the hosts in scope (``[kronos] metric_source``);
5. plan up to ``max_migrations`` live migrations;
6. with ``execute``, submit them and collect one result per move.

It returns an :class:`Outcome` and raises :class:`BadInput` or
:class:`Unavailable`; it never prints. ``nova-kronos-manage kronos
rebalance`` (one-shot or ``--periodic`` through :func:`run_periodic`) and
the demo are its callers: they render the outcome and map it to exit codes.
"""

import dataclasses
import time

from oslo_log import log as logging

from nova_kronos import history
from nova_kronos import metrics
from nova_kronos import planner as planner_mod
from nova_kronos import policy as policy_mod

LOG = logging.getLogger(__name__)


class RebalanceError(Exception):
    """A run that stopped before any migration was submitted."""


class BadInput(RebalanceError):
    """Invalid options, policies file, planner name or scope."""


class Unavailable(RebalanceError):
    """Prometheus or the Nova API could not be read; nothing moved."""


class Locked(RebalanceError):
    """Another run holds the lock of an aggregate in scope; nothing moved."""


#: A drain's default budget: every server of the host(s), as an operator
#: draining a host expects (``--max-migrations`` bounds it).
DRAIN_BUDGET = 1000000


@dataclasses.dataclass(frozen=True)
class Request:
    """What one run is asked to do.

    :ivar aggregates: aggregate names (empty: every aggregate).
    :ivar availability_zone: keep only aggregates of this zone, or None.
    :ivar execute: submit the planned moves (False: dry run).
    :ivar max_migrations: largest number of moves to plan (>= 0; a
        drain's default is :data:`DRAIN_BUDGET`).
    :ivar cloud: clouds.yaml cloud name, or None for ``[kronos_nova]``.
    :ivar planner: planner plugin name (``spread``, ``pack``).
    :ivar drain_hosts: host names to empty instead of balancing (the
        scope is then, unless ``aggregates`` names it, every aggregate
        holding one of them).
    :ivar drain_disabled: drain the hosts in scope whose nova-compute is
        disabled (but up) and still holds servers, when there are any.
    :ivar settings: the :class:`nova_kronos.planner.Settings`.
    """

    aggregates: tuple = ()
    availability_zone: str = None
    execute: bool = False
    max_migrations: int = 5
    cloud: str = None
    planner: str = 'spread'
    drain_hosts: tuple = ()
    drain_disabled: bool = False
    settings: planner_mod.Settings = planner_mod.Settings()

    @classmethod
    def from_conf(cls, conf, aggregates=None, availability_zone=None,
                  execute=None, max_migrations=None, cloud=None,
                  planner=None, drain_hosts=(), drain_disabled=None,
                  **settings):
        """A request from ``[kronos_rebalance]``; non-None arguments win.

        :param settings: :class:`nova_kronos.planner.Settings` fields
            (``aggressiveness``, ``target_imbalance``, ``migration_cost``,
            ``max_migrated_gib``); None values are read from the options.
        :raises BadInput: ``max_migrations`` is negative, or a setting is
            out of range.
        """
        opts = conf.kronos_rebalance
        fields = {name: getattr(opts, name) for name in (
            'aggressiveness', 'target_imbalance', 'migration_cost',
            'max_migrated_gib', 'shared_storage', 'migration_rate')}
        fields.update((k, v) for k, v in settings.items() if v is not None)
        try:
            chosen = planner_mod.Settings(**fields)
        except ValueError as e:
            raise BadInput(str(e)) from e
        request = cls(
            aggregates=tuple(aggregates or opts.aggregates or ()),
            availability_zone=availability_zone or opts.availability_zone,
            execute=(not opts.dry_run) if execute is None else bool(execute),
            max_migrations=(max_migrations if max_migrations is not None
                            else DRAIN_BUDGET if drain_hosts
                            else opts.max_migrations),
            cloud=cloud or opts.cloud,
            planner=planner or opts.planner,
            drain_hosts=tuple(drain_hosts or ()),
            drain_disabled=(opts.drain_disabled if drain_disabled is None
                            else bool(drain_disabled)),
            settings=chosen)
        if request.max_migrations < 0:
            raise BadInput('--max-migrations must be >= 0, got %d'
                           % request.max_migrations)
        return request


@dataclasses.dataclass
class Outcome:
    """The result of one run.

    :ivar request: the :class:`Request` that was run.
    :ivar plans: one :class:`nova_kronos.planner.Plan` per round: the
        first plan, then one per re-plan after moves that did not succeed.
    :ivar results: list of :class:`nova_kronos.cloud.executor.MoveResult`,
        one per move of every round, or None in a dry run.
    :ivar stopped: name of the signal that stopped the run, or None.
    """

    request: Request
    plans: list
    results: list = None
    stopped: str = None

    @property
    def plan(self):
        """The first round's plan (what the loads and imbalance refer to)."""
        return self.plans[0]

    @property
    def moves(self):
        """Every planned move, all rounds, in order."""
        return [m for p in self.plans for m in p.moves]

    @property
    def executed(self):
        return self.results is not None

    @property
    def failed_moves(self):
        """Results whose status is not ``succeeded`` (empty in a dry run)."""
        from nova_kronos.cloud import executor
        return [r for r in self.results or ()
                if r.status != executor.SUCCEEDED]

    @property
    def unmovable(self):
        """``(server_id, reason)`` a drain leaves behind (last round).

        Servers still waiting for room count too once the run executed
        (no further round will move them).
        """
        if not self.plans:
            return []
        last = self.plans[-1]
        return list(last.unmovable) + (list(last.waiting) if self.executed
                                       else [])

    @property
    def waiting(self):
        """Dry run: servers a drain moves in a later round (last plan).

        Empty once executed: they then count as :attr:`unmovable`.
        """
        if self.executed or not self.plans:
            return []
        return list(self.plans[-1].waiting)

    @property
    def deferred(self):
        """Servers a drain left for a later run (budget spent; last plan)."""
        return list(self.plans[-1].deferred) if self.plans else []

    @property
    def work_found(self):
        """A dry run planned at least one move."""
        return not self.request.execute and bool(self.plan.moves)


def load_policies(conf):
    """The validated policies of ``[kronos] policies_file``.

    :raises BadInput: the file is missing or invalid (the message names the
        file, the policy and the field).
    """
    try:
        return policy_mod.load_file(conf.kronos.policies_file)
    except policy_mod.PolicyError as e:
        raise BadInput(str(e)) from e


def run(conf, request, conn=None, metric_source=None, stop=None,
        clock=time.time):
    """Run one rebalance cycle.

    With ``execute``, the per-aggregate locks of the scope are held from
    reading the inventory to the end of execution (dry runs take none).
    Each round reads the inventory, the metrics and Nova's migration
    records, plans, and executes; a round whose moves were refused or
    failed, or whose plan has servers waiting for room its moves make (a
    drain), is followed by another over the rest of the budget, until the
    budget is spent, ``max_failures`` is reached or a round submits
    nothing.

    :param conf: oslo.config ConfigOpts with the nova-kronos options
        registered (:func:`nova_kronos.conf.register_opts`).
    :param request: :class:`Request`.
    :param conn: an openstacksdk Connection; built from ``request.cloud``
        or ``[kronos_nova]`` when None.
    :param metric_source: a :class:`nova_kronos.metrics.MetricSource`;
        loaded by name from ``[kronos] metric_source`` when None.
    :param stop: a :class:`nova_kronos.cloud.executor.Stop` the signal
        handlers escalate, or None.
    :param clock: epoch seconds (Nova's migration records are compared
        with it).
    :returns: :class:`Outcome`.
    :raises BadInput: bad policies file, planner, scope or credentials
        options; checked before the Nova API is touched where possible.
    :raises Unavailable: the inventory, the metrics or the migration
        records cannot be read, or no host of an aggregate has usable
        load; nothing was planned or migrated.
    :raises Locked: another run holds an aggregate's lock.
    """
    from nova_kronos.cloud import connection
    from nova_kronos.cloud import executor
    from nova_kronos.cloud import inventory
    from nova_kronos import coordination

    opts = conf.kronos_rebalance
    stop = stop or executor.Stop(grace=opts.stop_grace)
    policy_set = load_policies(conf)
    try:
        planner = planner_mod.load_planner(request.planner,
                                           settings=request.settings)
    except planner_mod.PlannerError as e:
        raise BadInput(str(e)) from e
    if conn is None:
        try:
            conn = connection.connect(conf, request.cloud)
        except connection.ConnectionConfigError as e:
            raise BadInput(str(e)) from e
    try:
        source = metric_source or metrics.load_source(
            conf.kronos.metric_source, conf)
    except metrics.MetricsError as e:
        raise Unavailable('cannot read metrics, nothing planned or '
                          'migrated: %s' % e) from e
    if not request.execute:
        return _rounds(conf, request, conn, source, policy_set, planner,
                       stop, clock)
    try:
        names = inventory.scope_names(conn, request.aggregates,
                                      request.availability_zone,
                                      request.drain_hosts)
        url = coordination.backend_url(opts)
    except inventory.ScopeError as e:
        raise BadInput(str(e)) from e
    except inventory.InventoryError as e:
        raise Unavailable(str(e)) from e
    except coordination.CoordinationError as e:
        raise BadInput(str(e)) from e
    try:
        with coordination.aggregate_locks(url, names, opts.lock_timeout):
            return _rounds(conf, request, conn, source, policy_set,
                           planner, stop, clock)
    except coordination.LockTimeout as e:
        raise Locked(str(e)) from e
    except coordination.CoordinationError as e:
        raise Unavailable(str(e)) from e


def _rounds(conf, request, conn, source, policy_set, planner, stop, clock):
    from nova_kronos.cloud import executor

    opts = conf.kronos_rebalance
    outcome = Outcome(request=request, plans=[],
                      results=[] if request.execute else None)
    options = memory_options(conf)
    settle = settle_times(conf, policy_set)
    quarantined = []
    budget = request.max_migrations
    failures = 0
    while True:
        fleet, plan = _plan_round(conf, request, conn, source, policy_set,
                                  planner, budget, options, settle,
                                  quarantined, clock)
        outcome.plans.append(plan)
        if not request.execute:
            break
        if stop.stopping:
            outcome.results.extend(executor.MoveResult(
                m, executor.NOT_STARTED, m.source,
                'not submitted: the run was stopped (%s)' % stop.signal_name)
                for m in plan.moves)
            break
        if not plan.moves:
            break
        results = executor.execute(
            conn, plan.moves, timeout=opts.migration_timeout,
            poll_interval=opts.poll_interval,
            max_parallel=opts.max_parallel,
            max_failures=opts.max_failures - failures,
            groups={s.id: s.group_id for s in fleet.servers.values()
                    if s.group_id},
            stop=stop)
        outcome.results.extend(results)
        failures += sum(r.failure for r in results)
        submitted = sum(r.status != executor.NOT_STARTED for r in results)
        budget -= submitted
        retry = [r for r in results if r.status != executor.SUCCEEDED]
        if (not (retry or plan.waiting) or not submitted or budget <= 0
                or stop.stopping or failures >= opts.max_failures):
            break
        now = clock()
        for r in results:
            if r.failure:
                quarantined.append((
                    r.move.server_id, r.move.destination,
                    now + opts.quarantine_time,
                    'live migration to %s %s in this run'
                    % (r.move.destination, r.status)))
        LOG.info('kronos: %d move(s) did not succeed, %d server(s) wait '
                 'for room made by this round; planning up to %d more from '
                 'a fresh read of the cloud', len(retry), len(plan.waiting),
                 budget)
    outcome.stopped = stop.signal_name
    moves = sum(len(p.moves) for p in outcome.plans)
    LOG.info('kronos: rebalance %s: %d move(s) planned in %d round(s)%s',
             'execute' if request.execute else 'dry run', moves,
             len(outcome.plans), '' if outcome.results is None
             else ', %d did not succeed' % len(outcome.failed_moves))
    return outcome


def _plan_round(conf, request, conn, source, policy_set, planner, budget,
                options, settle, quarantined, clock):
    """Read the cloud and plan once: (fleet, plan).

    ``options`` and ``settle`` are :func:`nova_kronos.history.remember`'s
    (computed once per run).
    """
    from nova_kronos.cloud import inventory
    from nova_kronos.cloud import migrations

    try:
        fleet = inventory.read_fleet(
            conn, aggregates=request.aggregates,
            availability_zone=request.availability_zone,
            hosts=request.drain_hosts)
    except inventory.ScopeError as e:
        raise BadInput(str(e)) from e
    except inventory.InventoryError as e:
        raise Unavailable(str(e)) from e
    try:
        snapshot = source.collect(policy_set, hosts=fleet.hosts,
                                  known_hosts=fleet.known_hosts or None)
    except metrics.MetricsError as e:
        raise Unavailable('cannot read metrics, nothing planned or '
                          'migrated: %s' % e) from e
    _require_loads(fleet, policy_set, snapshot)

    now = clock()
    horizon = max([options.window, options.quarantine]
                  + list(settle.values()))
    try:
        records = migrations.records(conn, changes_since=now - horizon)
    except migrations.NovaError as e:
        raise Unavailable("cannot read Nova's migration records, nothing "
                          'planned or migrated: %s' % e) from e
    hosts = set(fleet.hosts)
    records = [r for r in records
               if r.server_id in fleet.servers or r.source in hosts
               or r.destination in hosts]
    remembered = history.remember(records, now, options, settle)
    for server_id, dest, until, why in quarantined:
        remembered.add_quarantine(server_id, dest, until, why)

    oracle = nova_rules_oracle(conf, fleet, conn)
    planner = drain_planner(request, fleet) or planner
    plan = planner.plan(fleet, policy_set, snapshot, budget, oracle=oracle,
                        memory=remembered)
    if oracle is not None:
        plan.feasibility = {'mode': oracle.mode, 'rules': oracle.rules,
                            'not_evaluated': list(oracle.not_evaluated)}
    plan.memory = remembered.summary()
    return fleet, plan


def drain_planner(request, fleet):
    """The :class:`~nova_kronos.planner.drain.DrainPlanner` a round needs.

    For ``drain_hosts``, always; with ``drain_disabled``, when a host in
    scope has its nova-compute disabled but up and still holds a server
    (else None: the round balances).
    """
    from nova_kronos.planner import drain
    hosts = request.drain_hosts
    if not hosts and request.drain_disabled:
        busy = {s.host for s in fleet.servers.values() if s.migratable}
        hosts = tuple(sorted(h.name for h in fleet.hosts.values()
                             if h.disabled and h.name in busy))
        if hosts:
            LOG.info('kronos: draining disabled host(s) %s before any '
                     'balancing', ', '.join(hosts))
    if not hosts:
        return None
    return drain.DrainPlanner(hosts, settings=request.settings)


def memory_options(conf):
    """:class:`nova_kronos.history.MemoryOptions` of ``[kronos_rebalance]``."""
    opts = conf.kronos_rebalance
    return history.MemoryOptions(
        cooldown=opts.cooldown, cooldown_max=opts.cooldown_max,
        window=opts.cooldown_window, quarantine=opts.quarantine_time)


def settle_times(conf, policy_set):
    """{policy name: seconds until its metrics reflect a migration}."""
    scrape = conf.kronos_prometheus.scrape_interval
    return {p.name: p.settle_seconds(scrape) for p in policy_set.enabled}


def _require_loads(fleet, policy_set, snapshot):
    """Unavailable when an aggregate has no host with every policy's load.

    Planning on nothing would report success for a run that measured
    nothing (e.g. a query or host_mapping that matches no host).
    """
    policies = [p.name for p in policy_set.enabled]
    empty = []
    for agg in fleet.aggregates:
        hosts = [h for h in agg.hosts if h in fleet.hosts]
        if hosts and not any(
                all(h in snapshot.data[p].hosts for p in policies)
                for h in hosts):
            empty.append(agg.name)
    if empty:
        reasons = sorted({'%s: %s' % (e.policy, e.reason)
                          for e in snapshot.exclusions if e.kind == 'host'})
        raise Unavailable(
            'no usable load for any host of aggregate %s (policies %s), '
            'nothing planned or migrated; first reasons: %s'
            % (', '.join(empty), ', '.join(policies),
               '; '.join(reasons[:3]) or 'no sample at all'))


_NOVA_CONF_LOADED = []


def _load_nova_conf(conf):
    """Load Nova's own configuration from our config files, once.

    Inside Nova's processes (or its functional test harness) Nova's
    configuration is already loaded (it has an API database connection)
    and is used as is.

    :returns: True when Nova's configuration reaches its API database.
    """
    from nova import conf as nova_conf
    if nova_conf.CONF.api_database.connection:
        return True
    files = list(conf.config_file or ())
    if files and not _NOVA_CONF_LOADED:
        from nova import config as nova_config
        try:
            nova_config.parse_args(['nova-kronos-manage'],
                                   default_config_files=files,
                                   init_rpc=False)
            _NOVA_CONF_LOADED.append(files)
        except Exception as e:
            LOG.warning("kronos: cannot load Nova's configuration from %s: "
                        '%s', ', '.join(files), e)
    return bool(nova_conf.CONF.api_database.connection)


def nova_rules_oracle(conf, fleet, conn):
    """The feasibility oracle ``[kronos_rebalance] feasibility`` asks for.

    :returns: an oracle of :mod:`nova_kronos.cloud.nova_rules`, or None.
    :raises BadInput: ``scheduler`` mode without database access.
    """
    from nova_kronos.cloud import nova_rules
    mode = conf.kronos_rebalance.feasibility
    if mode == 'none':
        return None
    has_db = _load_nova_conf(conf)
    if mode in ('auto', 'scheduler'):
        if mode == 'scheduler' and not has_db:
            raise BadInput('[kronos_rebalance] feasibility = scheduler needs '
                           "Nova's [api_database] connection in the config "
                           'files')
        if has_db:
            try:
                return nova_rules.SchedulerOracle(fleet)
            except nova_rules.RulesUnavailable as e:
                if mode == 'scheduler':
                    raise BadInput(str(e)) from e
                LOG.warning('kronos: %s; checking moves through the APIs '
                            'only', e)
    from nova import conf as nova_conf
    return nova_rules.ApiOracle(
        conn, fleet, nova_conf.CONF.filter_scheduler.enabled_filters)


def run_periodic(conf, request, interval, stop, report, conn=None,
                 metric_source=None):
    """Run :func:`run` every ``interval`` seconds until ``stop`` is set.

    A cycle that raises :class:`RebalanceError` does not end the loop (a
    Prometheus restart must not stop an unattended rebalancer). A stop
    request ends the wait between cycles at once and, during a cycle,
    stops it as in one-shot mode (nothing more is submitted).

    :param interval: seconds between the end of one cycle and the start
        of the next (> 0).
    :param stop: a :class:`nova_kronos.cloud.executor.Stop`.
    :param report: callable ``report(outcome, error)`` after each cycle,
        with exactly one of the two set.
    :returns: the last cycle's :class:`Outcome` or :class:`RebalanceError`.
    """
    last = None
    while not stop.stopping:
        try:
            last = run(conf, request, conn=conn, metric_source=metric_source,
                       stop=stop)
            report(last, None)
        except RebalanceError as e:
            last = e
            report(None, e)
        deadline = time.monotonic() + interval
        while not stop.stopping and time.monotonic() < deadline:
            stop.wait(deadline - time.monotonic())
    return last
