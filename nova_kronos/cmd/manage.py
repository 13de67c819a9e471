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

"""``nova-kronos-manage``: the nova-manage-style command of nova-kronos.

Usage::

    nova-kronos-manage [--config-file nova.conf] kronos rebalance \\
        [--aggregate NAME]... [--dry-run | --execute] [--max-migrations N] \\
        [--planner spread|pack] [--aggressiveness 1-5] \\
        [--target-imbalance I] [--max-migrated-gib GIB] \\
        [--[no-]migration-cost] [--drain-disabled] \\
        [--max-parallel N] [--lock-timeout SECONDS] [--format table|json] \\
        [--periodic [--interval SECONDS]]
    nova-kronos-manage [--config-file nova.conf] kronos drain \\
        --host HOST [--host HOST]... [--dry-run | --execute] [...]
    nova-kronos-manage [--config-file nova.conf] kronos validate-policies \\
        [--offline]

Options are read from nova.conf (``[kronos]``, ``[kronos_prometheus]``,
``[kronos_rebalance]``, ``[kronos_nova]``); command-line flags override
them. Without ``--config-file``, ``/etc/nova/nova.conf`` is read when it
exists, as nova-manage does.

Exit codes follow nova-manage's convention, extended:

=====  ==============================================================
0      nothing to do (dry run), or every planned move succeeded
1      at least one move was refused, failed, timed out or not started,
       or a server cannot leave a host being drained
2      bad input: options, config values, policies file, unknown
       aggregate, a PromQL query Prometheus cannot parse
3      Prometheus, the Nova API or the lock service could not be
       used, or no host of an aggregate had a usable load; nothing moved
4      dry run found work (the plan has moves)
5      another run holds the lock of an aggregate in scope; nothing moved
130    stopped by SIGINT (143: by SIGTERM); the report is still printed
255    unexpected error
=====  ==============================================================

Logs go to stderr (or ``log_file``); stdout carries only the report, so
``--format json`` output is always parseable.
"""

import argparse
import json
import os
import signal
import sys

from oslo_config import cfg
from oslo_log import log as logging
import prettytable

from nova_kronos import conf as kronos_conf
from nova_kronos import rebalance as rebalance_mod
from nova_kronos import text

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_MOVE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_WORK_FOUND = 4
EXIT_LOCKED = 5
EXIT_UNEXPECTED = 255
#: 128 + signal number, as shells report a process a signal ended.
EXIT_SIGNAL = {'SIGINT': 130, 'SIGTERM': 143}
#: Characters of an error or a Prometheus answer quoted in a message.
QUOTED_CHARS = 200


class CommandError(Exception):
    """A failure with an exit code and a message for the operator."""

    def __init__(self, message, code):
        super().__init__(message)
        self.code = code


def _add_parsers(subparsers):
    kronos = subparsers.add_parser(
        'kronos', help='load-aware rebalancing of Nova host aggregates',
        description='Load-aware rebalancing of Nova host aggregates.')
    actions = kronos.add_subparsers(dest='action', metavar='ACTION')
    actions.required = True

    rb = actions.add_parser(
        'rebalance', help='plan (and optionally run) live migrations',
        description='Plan live migrations that even out the load inside each '
                    'host aggregate (planner spread) or empty its least '
                    'loaded hosts (planner pack), using the policies file '
                    'and the metric source. Dry run by default: prints the '
                    'plan and moves nothing. With --execute, holds a lock '
                    'per aggregate, submits each move as a live migration '
                    'to an explicit host (Nova re-validates it), up to '
                    '--max-parallel at once and one per host, and reports '
                    'what Nova did; a refused or failed move is quarantined '
                    'and the rest of the budget planned again. Servers '
                    'migrated recently, migrating now or refused recently '
                    '(read from Nova\'s migration records) are left alone, '
                    'and recent migrations the metrics do not show yet are '
                    'added to the measured loads. SIGINT/SIGTERM: submit '
                    'nothing more and wait; a second signal aborts '
                    'in-flight migrations.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index('Exit codes'):])
    _scope_and_run_args(rb)
    rb.add_argument('--planner', metavar='NAME',
                    help='planner plugin: spread or pack (default: '
                         '[kronos_rebalance] planner)')
    rb.add_argument('--aggressiveness', type=int, choices=range(1, 6),
                    metavar='1-5',
                    help='1 only relieves hosts above a threshold; 2-5 '
                         'tolerate less imbalance and accept smaller '
                         'gains (default: [kronos_rebalance] '
                         'aggressiveness, 3)')
    rb.add_argument('--target-imbalance', type=_positive(float, zero=True),
                    metavar='I',
                    help='stop inside an aggregate once its combined '
                         'imbalance is at or below I (default: the '
                         "level's tolerated imbalance)")
    rb.add_argument('--drain-disabled', action='store_true', default=None,
                    help='when hosts in scope have nova-compute disabled but '
                         'up and still hold servers, drain them instead of '
                         'balancing')
    rb.add_argument('--periodic', action='store_true',
                    help='run again every --interval seconds until stopped')
    rb.add_argument('--interval', type=_positive(int), metavar='SECONDS',
                    help='seconds between periodic runs (default: '
                         '[kronos_rebalance] interval, else 300)')

    dr = actions.add_parser(
        'drain', help='plan (and optionally run) the evacuation of hosts '
                      'by live migration',
        description='Plan live migrations that move every server off the '
                    'given host(s) to the other hosts of their aggregates, '
                    'choosing destinations that keep each aggregate '
                    'balanced, under the same rules as rebalance (server '
                    'groups, capacity, thresholds, zones, Nova\'s '
                    'scheduling rules). Largest servers first; when a '
                    'server fits nowhere, one other server may be moved to '
                    'make room. A server that cannot move is reported and '
                    'the others still move. Dry run by default. Disable the '
                    'host\'s nova-compute first (openstack compute service '
                    'set --disable) so the scheduler places nothing new '
                    'there.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index('Exit codes'):])
    dr.add_argument('--host', action='append', dest='drain_hosts',
                    metavar='HOST', required=True,
                    help='compute host to empty (repeatable)')
    _scope_and_run_args(dr, drain=True)
    vp = actions.add_parser(
        'validate-policies', help='check the policies file and exit',
        description='Load [kronos] policies_file, report every error with '
                    'the file, policy and field, have the configured '
                    'Prometheus parse every query, and print the policies.')
    vp.add_argument('--offline', action='store_true',
                    help='check the file only; do not ask Prometheus to '
                         'parse the queries')


def _scope_and_run_args(parser, drain=False):
    """Arguments rebalance and drain share."""
    parser.add_argument(
        '--aggregate', action='append', dest='aggregates', metavar='NAME',
        help='host aggregate to work in (repeatable; default: %s)'
        % ('every aggregate holding a drained host' if drain else
           '[kronos_rebalance] aggregates, else all'))
    parser.add_argument('--availability-zone', metavar='AZ',
                        help='only aggregates of this availability zone')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--dry-run', dest='execute', action='store_false',
                      default=None, help='print the plan, migrate nothing '
                                         '(the default)')
    mode.add_argument('--execute', dest='execute', action='store_true',
                      help='submit the planned live migrations')
    parser.add_argument(
        '--max-migrations', type=int, metavar='N',
        help='largest number of moves to plan (default: [kronos_rebalance] '
             'max_migrations)')
    parser.add_argument(
        '--max-migrated-gib', type=_positive(float, zero=True),
        metavar='GIB',
        help='largest total of GiB the live migrations may copy (RAM, plus '
             'root disks of block migrations; default: [kronos_rebalance] '
             'max_migrated_gib, else no limit)')
    parser.add_argument(
        '--migration-cost', action=argparse.BooleanOptionalAction,
        default=None,
        help='rank moves by gain per GiB copied (default: '
             '[kronos_rebalance] migration_cost, true)')
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table',
                        help='output format (default: table)')
    parser.add_argument('--cloud', metavar='NAME',
                        help='clouds.yaml cloud to use instead of '
                             '[kronos_nova]')
    parser.add_argument(
        '--max-parallel', type=_positive(int), metavar='N',
        help='live migrations in flight at once, at most one per host '
             '(default: [kronos_rebalance] max_parallel)')
    parser.add_argument(
        '--lock-timeout', type=_positive(float, zero=True),
        metavar='SECONDS',
        help="seconds to wait for another run holding an aggregate's lock "
             '(default: [kronos_rebalance] lock_timeout); exit code 5 when '
             'it stays taken')


def _positive(kind, zero=False):
    """argparse type: a number > 0 (>= 0 with ``zero``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError('not a number: %r' % text)
        if value < 0 or (value == 0 and not zero) or value != value:
            raise argparse.ArgumentTypeError(
                'must be %s 0, got %s' % ('>=' if zero else '>', text))
        return value
    return parse


def build_conf(argv):
    """Parse ``argv`` into a fresh ConfigOpts with our options registered.

    :raises CommandError: (exit code 2) bad command line or config file.
    """
    conf = cfg.ConfigOpts()
    kronos_conf.register_opts(conf)
    logging.register_options(conf)
    conf.register_cli_opt(cfg.SubCommandOpt(
        'category', title='Command categories', handler=_add_parsers))
    try:
        conf(argv, project='nova', prog='nova-kronos-manage')
    except cfg.Error as e:
        raise CommandError(str(e), EXIT_BAD_INPUT) from e
    except SystemExit as e:
        # argparse printed the usage error (or --help) already.
        raise CommandError(None, e.code or 0) from e
    check_options(conf)
    return conf


#: Option groups whose values are checked when the command starts.
CHECKED_GROUPS = ('kronos', 'kronos_prometheus', 'kronos_rebalance')


def check_options(conf):
    """Read every nova-kronos option once, so a bad value fails at start.

    oslo.config converts a value when it is first read: without this, a
    typo in nova.conf surfaces mid-run as a traceback. With the Prometheus
    metric source, ``[kronos_prometheus]`` is also checked as the source
    checks it (:func:`nova_kronos.metrics.prometheus.check_options`:
    credentials in ``url``, ``username`` with ``bearer_token``, ...).

    :raises CommandError: (exit code 2) naming the group and the option,
        one problem a line; no message quotes a password or a token.
    """
    for group in CHECKED_GROUPS:
        for name in list(conf[group].keys()):
            try:
                getattr(conf[group], name)
            except (cfg.Error, ValueError) as e:
                # oslo.config quotes the value, and a URL's userinfo with
                # it: not for the URL.
                hide = (group, name) == ('kronos_prometheus', 'url')
                detail = ('not an http or https URL with a host (the value '
                          'is not shown: it may hold credentials)' if hide
                          else text.one_line(e, QUOTED_CHARS))
                raise CommandError(
                    'bad value of [%s] %s in the config files: %s'
                    % (group, name, detail),
                    EXIT_BAD_INPUT) from (None if hide else e)
    prom = conf.kronos_prometheus
    if conf.kronos.metric_source != 'prometheus':
        return
    from nova_kronos.metrics import prometheus
    problems = prometheus.check_options(prom)
    if problems:
        raise CommandError('\n'.join(problems), EXIT_BAD_INPUT)
    if prom.ca_file and not prom.insecure and \
            not os.path.exists(prom.ca_file):
        raise CommandError('bad value of [kronos_prometheus] ca_file: %s '
                           'does not exist' % prom.ca_file, EXIT_BAD_INPUT)


def exit_code(outcome):
    """nova-manage's convention for a finished run (see the module doc)."""
    if outcome.stopped:
        return EXIT_SIGNAL.get(outcome.stopped, 130)
    if outcome.unmovable:
        return EXIT_MOVE_FAILED
    if outcome.executed:
        return EXIT_MOVE_FAILED if outcome.failed_moves else EXIT_OK
    return EXIT_WORK_FOUND if outcome.work_found else EXIT_OK


def _write_error(err, error):
    # A policies file can have several errors, one per line: mark each.
    for line in str(error).splitlines() or ['']:
        err.write('ERROR: %s\n' % line)


def _error_code(error):
    if isinstance(error, rebalance_mod.Unavailable):
        return EXIT_UNAVAILABLE
    if isinstance(error, rebalance_mod.Locked):
        return EXIT_LOCKED
    return EXIT_BAD_INPUT


def _request(conf, args):
    for opt, value in (('max_parallel', args.max_parallel),
                       ('lock_timeout', args.lock_timeout)):
        if value is not None:
            conf.set_override(opt, value, group='kronos_rebalance')
    drain = args.action == 'drain'
    return rebalance_mod.Request.from_conf(
        conf, aggregates=args.aggregates,
        availability_zone=args.availability_zone, execute=args.execute,
        max_migrations=args.max_migrations, cloud=args.cloud,
        planner=None if drain else args.planner,
        drain_hosts=args.drain_hosts if drain else (),
        drain_disabled=False if drain else args.drain_disabled,
        aggressiveness=None if drain else args.aggressiveness,
        target_imbalance=None if drain else args.target_imbalance,
        max_migrated_gib=args.max_migrated_gib,
        migration_cost=args.migration_cost)


def outcome_document(outcome):
    """The JSON-ready dict of an :class:`~nova_kronos.rebalance.Outcome`.

    Keys: ``mode`` (``dry-run`` or ``execute``), ``aggregates`` (loads and
    imbalance before/after of the first plan, rejected candidates per
    constraint), ``moves`` (every round, in order, each with its
    ``round``), ``results`` (one per move when executed, else empty; the
    ``status`` is one of succeeded, refused, failed, timed-out,
    interrupted, not started, ``host`` where Nova shows the server now),
    ``rounds`` (plans made: 1 + re-plans), ``excluded`` (hosts and servers
    left out, with the reason), ``memory`` (what Nova's migration records
    held back: counts of frozen, cooling-down and quarantined servers and
    of overlaid migrations), ``overlay`` (migrations added to the measured
    loads because the metrics cannot reflect them yet), ``stopped`` (the
    signal that stopped the run, or null), ``feasibility`` (which of
    Nova's rules checked each move, and how many (server, host) pairs
    were asked; null when not checked), ``planner`` (spread, pack or
    drain), ``settings`` (aggressiveness, target and tolerated imbalance,
    migration cost, GiB limit), ``migrated_gib`` and
    ``estimated_seconds`` (every move's GiB copied and estimated duration,
    summed; each move has its own ``gib``, ``block_migration`` and
    ``estimated_seconds``), each aggregate's ``freed_hosts`` (hosts the
    plan empties), ``unmovable`` (servers a drain leaves behind, with the
    reason), ``deferred`` (servers a drain left for a later run because
    the budget was spent; not an error) and ``waiting`` (dry run: servers
    a drain moves in a later round, once room a planned move makes shows
    in Placement).
    """
    settings = outcome.request.settings
    plan = outcome.plan
    moves = [(i, m) for i, p in enumerate(outcome.plans, 1)
             for m in p.moves]
    return {
        'mode': 'execute' if outcome.request.execute else 'dry-run',
        'aggregates': [{
            'name': a.name, 'hosts': a.hosts,
            'imbalance_before': a.imbalance_before,
            'imbalance_after': a.imbalance_after,
            'dispersion_before': a.dispersion_before,
            'dispersion_after': a.dispersion_after,
            'loads_before': a.loads_before, 'loads_after': a.loads_after,
            'rejected_candidates': a.rejections,
            'freed_hosts': a.freed_hosts,
        } for a in plan.aggregates],
        'moves': [{
            'server_id': m.server_id, 'server_name': m.server_name,
            'source': m.source, 'destination': m.destination,
            'aggregate': m.aggregate, 'reason': m.reason,
            'imbalance_before': m.imbalance_before,
            'imbalance_after': m.imbalance_after, 'round': i,
            'gib': m.gib, 'block_migration': m.block_migration,
            'estimated_seconds': round(m.estimated_seconds, 1),
        } for i, m in moves],
        'results': [{
            'server_id': r.move.server_id, 'status': r.status,
            'source': r.move.source, 'destination': r.move.destination,
            'host': r.host, 'detail': r.detail,
            'seconds': round(r.seconds, 3), 'migration_id': r.migration_id,
        } for r in outcome.results or ()],
        'rounds': len(outcome.plans),
        'excluded': [{'kind': k, 'name': n, 'reason': r}
                     for k, n, r in plan.exclusions],
        'memory': plan.memory,
        'overlay': plan.overlay,
        'stopped': outcome.stopped,
        'feasibility': dict(plan.feasibility,
                            pairs_asked=plan.oracle_queries)
        if plan.feasibility else None,
        'planner': plan.planner,
        'settings': {
            'aggressiveness': settings.aggressiveness,
            'target_imbalance': settings.target_imbalance,
            'tolerated_imbalance': settings.tolerated_imbalance,
            'migration_cost': settings.migration_cost,
            'max_migrated_gib': settings.max_migrated_gib,
            'migration_rate': settings.migration_rate,
        },
        'migrated_gib': sum(m.gib for _, m in moves),
        'estimated_seconds': round(
            sum(m.estimated_seconds for _, m in moves), 1),
        'unmovable': [{'server_id': sid, 'reason': why}
                      for sid, why in outcome.unmovable],
        'deferred': [{'server_id': sid, 'reason': why}
                     for sid, why in outcome.deferred],
        'waiting': [{'server_id': sid, 'reason': why}
                    for sid, why in outcome.waiting],
    }


def _table(header, rows):
    table = prettytable.PrettyTable(header)
    table.align = 'l'
    for row in rows:
        table.add_row(row)
    return table.get_string() + '\n'


def render_table(outcome, out):
    """Print an outcome as tables.

    Per-aggregate loads, the moves (with their results when executed) and
    the exclusions, as the operator reads them.
    """
    plan, results = outcome.plan, outcome.results
    w = out.write
    w('Mode: %s\n' % ('execute' if outcome.request.execute
                      else 'dry run (nothing is migrated; use --execute)'))
    st = outcome.request.settings
    w('Planner: %s%s\n' % (plan.planner or outcome.request.planner, (
        ', aggressiveness %d, tolerated imbalance %g, migration cost %s%s'
        % (st.aggressiveness, st.tolerated_imbalance,
           'on' if st.migration_cost else 'off',
           ', at most %g GiB' % st.max_migrated_gib
           if st.max_migrated_gib is not None else ''))
        if plan.planner == 'spread' else ''))
    feas = plan.feasibility
    if feas:
        w("Nova's rules (%s mode) checked every move: %s; %d (server, host) "
          'pair(s) asked%s\n' % (
              feas['mode'], ', '.join(feas['rules']), plan.oracle_queries,
              '; not evaluated: %s' % ', '.join(feas['not_evaluated'])
              if feas.get('not_evaluated') else ''))
    else:
        w("Nova's rules were not checked ([kronos_rebalance] feasibility = "
          'none)\n')
    for a in plan.aggregates:
        n_moves = sum(1 for m in plan.moves if m.aggregate == a.name)
        w('\nAggregate %s: %d hosts, imbalance %.4f -> %.4f predicted, '
          '%d move(s)\n' % (a.name, len(a.hosts), a.imbalance_before,
                            a.imbalance_after, n_moves))
        policies = list(a.loads_before)
        w(_table(['host'] + ['%s before/after' % p for p in policies],
                 [[h] + ['%.3f / %.3f' % (a.loads_before[p][h],
                                          a.loads_after[p][h])
                         for p in policies] for h in a.hosts]))
        if a.rejections:
            w('candidate moves rejected in the last step: %s\n' % ', '.join(
                '%s %d' % kv for kv in sorted(a.rejections.items())))
        if a.freed_hosts:
            w('hosts emptied: %s\n' % ', '.join(a.freed_hosts))
    overlay = plan.overlay
    if overlay:
        w('\nMigrations the metrics do not reflect yet, added to the '
          'measured loads (%d):\n' % len(overlay))
        w(_table(['server', 'source', 'destination', 'state', 'policies'],
                 [[o['server_id'], o['source'], o['destination'],
                   o['state'], ', '.join(o.get('policies') or ())
                   or o.get('skipped', '')] for o in overlay]))
    moves = outcome.moves
    w('\nMoves (%d%s):\n' % (len(moves), ', %d rounds' % len(outcome.plans)
                             if len(outcome.plans) > 1 else ''))
    if moves:
        by_move = {id(r.move): r for r in results or ()}
        header = ['#', 'server', 'name', 'source', 'destination',
                  'imbalance', 'GiB', 'reason']
        if results is not None:
            header += ['result', 'now on']
        rows = []
        for i, m in enumerate(moves, 1):
            row = [i, m.server_id, m.server_name, m.source, m.destination,
                   '%.4f -> %.4f' % (m.imbalance_before, m.imbalance_after),
                   '%.1f%s' % (m.gib, ' (block)' if m.block_migration
                               else ''), m.reason]
            if results is not None:
                r = by_move.get(id(m))
                row += (['%s: %s' % (r.status, r.detail), r.host or '?']
                        if r else ['', ''])
            rows.append(row)
        w(_table(header, rows))
        total = sum(m.gib for m in moves)
        w('Live migrations copy %.1f GiB: about %s at %g MiB/s, one after '
          'the other (a lower bound: pages dirtied meanwhile are sent '
          'again)\n' % (total, _duration(st.seconds(total)),
                        st.migration_rate))
    if outcome.waiting:
        w('\nWaiting for room a planned move makes (%d):\n'
          % len(outcome.waiting))
        w(_table(['server', 'reason'], outcome.waiting))
    if outcome.deferred:
        w('\nLeft for a later run, the budget being spent (%d):\n'
          % len(outcome.deferred))
        w(_table(['server', 'reason'], outcome.deferred))
    if outcome.unmovable:
        w('\nLeft on the drained host(s) (%d):\n' % len(outcome.unmovable))
        w(_table(['server', 'reason'], outcome.unmovable))
    if results:
        counts = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        w('Results: %s\n' % ', '.join(
            '%s %d' % kv for kv in sorted(counts.items())))
    if outcome.stopped:
        w('Stopped by %s: nothing more was submitted.\n' % outcome.stopped)
    if plan.exclusions:
        w('\nExcluded (%d):\n' % len(plan.exclusions))
        w(_table(['kind', 'name', 'reason'], plan.exclusions))


def _duration(seconds):
    """``'42 s'``, ``'3 min 20 s'`` or ``'1 h 05 min'``."""
    seconds = int(round(seconds))
    if seconds < 60:
        return '%d s' % seconds
    if seconds < 3600:
        return '%d min %02d s' % divmod(seconds, 60)
    return '%d h %02d min' % (seconds // 3600, seconds % 3600 // 60)


def render(outcome, fmt, out):
    """Print an outcome as ``table`` or ``json``."""
    if fmt == 'json':
        json.dump(outcome_document(outcome), out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        render_table(outcome, out)


def validate_policies(conf, out=sys.stdout, offline=False,
                      metric_source=None):
    """Check the policies file and, unless ``offline``, every query.

    Each ``host_query`` and ``vm_query`` is parsed by the configured
    Prometheus (``PrometheusSource.check_syntax``), so a typo is caught
    before the weigher or a rebalance run meets it.

    :raises BadInput: the file is invalid or a query does not parse.
    :raises Unavailable: Prometheus could not be asked.
    """
    from nova_kronos import metrics

    policy_set = rebalance_mod.load_policies(conf)
    checked = ''
    if not offline:
        try:
            source = metric_source or metrics.load_source(
                conf.kronos.metric_source, conf)
        except metrics.MetricsError as e:
            raise rebalance_mod.Unavailable(str(e)) from e
        check = getattr(source, 'check_syntax', None)
        if check is not None:
            errors = []
            try:
                for p in policy_set.policies:
                    for field in ('host_query', 'vm_query'):
                        problem = check(getattr(p, field))
                        if problem:
                            errors.append(
                                '%s: policy %r: field "%s": Prometheus '
                                'cannot parse it: %s' % (
                                    policy_set.source, p.name, field,
                                    text.one_line(problem, QUOTED_CHARS)))
            except metrics.MetricsError as e:
                raise rebalance_mod.Unavailable(
                    'cannot have the queries parsed (use --offline to check '
                    'the file only): %s' % e) from e
            if errors:
                raise rebalance_mod.BadInput('\n'.join(errors))
            checked = ' (every query parsed by %s)' % getattr(
                source, 'url', conf.kronos.metric_source)
    out.write('%s: OK%s\n' % (policy_set.source, checked))
    for p in policy_set.policies:
        out.write('  %s: %s, weight %g, threshold %g%s\n' % (
            p.name, p.mode, p.weight, p.threshold,
            '' if p.enabled else ' (disabled)'))
    return EXIT_OK


def _log_to_stderr(conf):
    # oslo.log writes to stdout when neither log_file nor use_stderr is
    # set; stdout is the report's (JSON must stay parseable).
    if not conf.log_file and not conf.use_journal:
        conf.set_override('use_stderr', True)
    logging.setup(conf, 'nova-kronos-manage')


class _Signals:
    """SIGINT/SIGTERM escalate a :class:`~executor.Stop` while installed."""

    NAMES = {signal.SIGINT: 'SIGINT', signal.SIGTERM: 'SIGTERM'}

    def __init__(self, stop):
        self.stop = stop
        self.saved = {}

    def __enter__(self):
        for signum in self.NAMES:
            try:
                self.saved[signum] = signal.signal(signum, self._handle)
            except ValueError:
                # Not the main thread (an embedding caller): its signals
                # are its own business.
                break
        return self

    def _handle(self, signum, frame):
        self.stop.request(self.NAMES.get(signum, str(signum)))
        LOG.warning(
            'kronos: %s received: %s', self.NAMES.get(signum, signum),
            'submitting nothing more, waiting up to %g s for in-flight live '
            'migrations (signal again to abort them)' % self.stop.grace
            if not self.stop.aborting
            else 'aborting in-flight live migrations through Nova')

    def __exit__(self, *exc):
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)


def main(argv=None, conn=None, out=None, err=None, metric_source=None,
         stop=None):
    """Console-script entry point; returns the exit code.

    :param argv: arguments without the program name (default sys.argv[1:]).
    :param conn: openstacksdk Connection to use instead of building one
        (functional tests hand in one that reaches an in-process Nova).
    :param metric_source: a metric source to use instead of loading
        ``[kronos] metric_source``.
    :param stop: an :class:`nova_kronos.cloud.executor.Stop` to use (the
        signal handlers escalate it); a new one when None.
    """
    from nova_kronos.cloud import executor

    out = out or sys.stdout
    err = err or sys.stderr
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        conf = build_conf(argv)
        _log_to_stderr(conf)
        args = conf.category
        if args.action == 'validate-policies':
            return validate_policies(conf, out, offline=args.offline,
                                     metric_source=metric_source)
        request = _request(conf, args)
        stop = stop or executor.Stop(grace=conf.kronos_rebalance.stop_grace)
        with _Signals(stop):
            if not getattr(args, 'periodic', False):
                outcome = rebalance_mod.run(conf, request, conn=conn,
                                            metric_source=metric_source,
                                            stop=stop)
                render(outcome, args.format, out)
                return exit_code(outcome)
            return _periodic(conf, args, request, conn, metric_source, out,
                             err, stop)
    except CommandError as e:
        if e.args[0]:
            _write_error(err, e)
        return e.code
    except rebalance_mod.RebalanceError as e:
        _write_error(err, e)
        if stop is not None and stop.stopping:
            return EXIT_SIGNAL.get(stop.signal_name, 130)
        return _error_code(e)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        LOG.exception('unexpected error')
        err.write('ERROR: unexpected %s: %s\n' % (
            type(e).__name__, text.one_line(e, QUOTED_CHARS)))
        return EXIT_UNEXPECTED


def _periodic(conf, args, request, conn, metric_source, out, err, stop):
    interval = args.interval or conf.kronos_rebalance.interval or 300

    def report(outcome, error):
        if error is not None:
            _write_error(err, error)
        else:
            render(outcome, args.format, out)
        out.flush()

    last = rebalance_mod.run_periodic(conf, request, interval, stop, report,
                                      conn=conn, metric_source=metric_source)
    if stop.stopping:
        return EXIT_SIGNAL.get(stop.signal_name, 130)
    if isinstance(last, rebalance_mod.RebalanceError):
        return _error_code(last)
    return EXIT_OK if last is None else exit_code(last)


if __name__ == '__main__':
    sys.exit(main())
