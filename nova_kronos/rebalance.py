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
2. load the planner plugin (``[kronos_rebalance] planner``);
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

from oslo_log import log as logging

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


@dataclasses.dataclass(frozen=True)
class Request:
    """What one run is asked to do.

    :ivar aggregates: aggregate names (empty: every aggregate).
    :ivar availability_zone: keep only aggregates of this zone, or None.
    :ivar execute: submit the planned moves (False: dry run).
    :ivar max_migrations: largest number of moves to plan (>= 0).
    :ivar cloud: clouds.yaml cloud name, or None for ``[kronos_nova]``.
    """

    aggregates: tuple = ()
    availability_zone: str = None
    execute: bool = False
    max_migrations: int = 5
    cloud: str = None

    @classmethod
    def from_conf(cls, conf, aggregates=None, availability_zone=None,
                  execute=None, max_migrations=None, cloud=None):
        """A request from ``[kronos_rebalance]``; non-None arguments win.

        :raises BadInput: ``max_migrations`` is negative.
        """
        opts = conf.kronos_rebalance
        request = cls(
            aggregates=tuple(aggregates or opts.aggregates or ()),
            availability_zone=availability_zone or opts.availability_zone,
            execute=(not opts.dry_run) if execute is None else bool(execute),
            max_migrations=(opts.max_migrations if max_migrations is None
                            else max_migrations),
            cloud=cloud or opts.cloud)
        if request.max_migrations < 0:
            raise BadInput('--max-migrations must be >= 0, got %d'
                           % request.max_migrations)
        return request


@dataclasses.dataclass
class Outcome:
    """The result of one run.

    :ivar request: the :class:`Request` that was run.
    :ivar plan: :class:`nova_kronos.planner.Plan`.
    :ivar results: list of :class:`nova_kronos.cloud.executor.MoveResult`,
        one per planned move, or None when nothing was submitted (dry run,
        or an empty plan).
    """

    request: Request
    plan: object
    results: list = None

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


def run(conf, request, conn=None, metric_source=None):
    """Run one rebalance cycle.

    :param conf: oslo.config ConfigOpts with the nova-kronos options
        registered (:func:`nova_kronos.conf.register_opts`).
    :param request: :class:`Request`.
    :param conn: an openstacksdk Connection; built from ``request.cloud``
        or ``[kronos_nova]`` when None.
    :param metric_source: a :class:`nova_kronos.metrics.MetricSource`;
        loaded by name from ``[kronos] metric_source`` when None.
    :returns: :class:`Outcome`.
    :raises BadInput: bad policies file, planner, scope or credentials
        options; checked before the Nova API is touched where possible.
    :raises Unavailable: the inventory or the metrics cannot be read;
        nothing was planned or migrated.
    """
    from nova_kronos.cloud import connection
    from nova_kronos.cloud import executor
    from nova_kronos.cloud import inventory

    opts = conf.kronos_rebalance
    policy_set = load_policies(conf)
    try:
        planner = planner_mod.load_planner(
            opts.planner, min_improvement=opts.min_improvement)
    except planner_mod.PlannerError as e:
        raise BadInput(str(e)) from e
    if conn is None:
        try:
            conn = connection.connect(conf, request.cloud)
        except connection.ConnectionConfigError as e:
            raise BadInput(str(e)) from e
    try:
        fleet = inventory.read_fleet(
            conn, aggregates=request.aggregates,
            availability_zone=request.availability_zone)
    except inventory.ScopeError as e:
        raise BadInput(str(e)) from e
    except inventory.InventoryError as e:
        raise Unavailable(str(e)) from e
    try:
        source = metric_source or metrics.load_source(
            conf.kronos.metric_source, conf)
        snapshot = source.collect(policy_set, hosts=fleet.hosts,
                                  known_hosts=fleet.known_hosts or None)
    except metrics.MetricsError as e:
        raise Unavailable('cannot read metrics, nothing planned or '
                          'migrated: %s' % e) from e

    oracle = nova_rules_oracle(conf, fleet, conn)
    plan = planner.plan(fleet, policy_set, snapshot, request.max_migrations,
                        oracle=oracle)
    if oracle is not None:
        plan.feasibility = {'mode': oracle.mode, 'rules': oracle.rules,
                            'not_evaluated': list(oracle.not_evaluated)}
    outcome = Outcome(request=request, plan=plan)
    if request.execute and plan.moves:
        outcome.results = executor.execute(
            conn, plan.moves, timeout=opts.migration_timeout,
            poll_interval=opts.poll_interval)
    LOG.info('kronos: rebalance %s: %d move(s) planned%s',
             'execute' if request.execute else 'dry run', len(plan.moves),
             '' if outcome.results is None else ', %d failed'
             % len(outcome.failed_moves))
    return outcome


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
    Prometheus restart must not stop an unattended rebalancer).

    :param interval: seconds between the end of one cycle and the start
        of the next (> 0).
    :param stop: a ``threading.Event``; setting it ends the wait at once.
    :param report: callable ``report(outcome, error)`` after each cycle,
        with exactly one of the two set.
    :returns: the last cycle's :class:`Outcome` or :class:`RebalanceError`.
    """
    last = None
    while not stop.is_set():
        try:
            last = run(conf, request, conn=conn, metric_source=metric_source)
            report(last, None)
        except RebalanceError as e:
            last = e
            report(None, e)
        stop.wait(interval)
    return last
