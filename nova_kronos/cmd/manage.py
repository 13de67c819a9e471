"""``nova-kronos-manage``: the nova-manage-style command of nova-kronos.

Usage::

    nova-kronos-manage [--config-file nova.conf] kronos rebalance \\
        [--aggregate NAME]... [--dry-run | --execute] [--max-migrations N] \\
        [--format table|json] [--periodic [--interval SECONDS]]
    nova-kronos-manage [--config-file nova.conf] kronos validate-policies

Options are read from nova.conf (``[kronos]``, ``[kronos_prometheus]``,
``[kronos_rebalance]``, ``[kronos_nova]``); command-line flags override
them. Without ``--config-file``, ``/etc/nova/nova.conf`` is read when it
exists, as nova-manage does.

Exit codes follow nova-manage's convention:

=====  ==============================================================
0      nothing to do (dry run), or every planned move succeeded
1      at least one move failed, timed out or was skipped
2      bad input: options, policies file, unknown aggregate
3      Prometheus or the Nova API could not be reached; nothing moved
4      dry run found work (the plan has moves)
255    unexpected error
=====  ==============================================================
"""

import argparse
import json
import signal
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos import planner as planner_mod
from nova_kronos import policy as policy_mod

LOG = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_MOVE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_WORK_FOUND = 4
EXIT_UNEXPECTED = 255


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
                    'host aggregate, using the policies file and the metric '
                    'source. Dry run by default: prints the plan and moves '
                    'nothing. With --execute, submits each move as a live '
                    'migration to an explicit host (Nova re-validates it), '
                    'waits for it and checks where the server landed.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__[__doc__.index('Exit codes'):])
    rb.add_argument('--aggregate', action='append', dest='aggregates',
                    metavar='NAME',
                    help='host aggregate to rebalance (repeatable; default: '
                         '[kronos_rebalance] aggregates, else all)')
    rb.add_argument('--availability-zone', metavar='AZ',
                    help='only aggregates of this availability zone')
    mode = rb.add_mutually_exclusive_group()
    mode.add_argument('--dry-run', dest='execute', action='store_false',
                      default=None, help='print the plan, migrate nothing '
                                         '(the default)')
    mode.add_argument('--execute', dest='execute', action='store_true',
                      help='submit the planned live migrations')
    rb.add_argument('--max-migrations', type=int, metavar='N',
                    help='largest number of moves to plan (default: '
                         '[kronos_rebalance] max_migrations)')
    rb.add_argument('--format', choices=('table', 'json'), default='table',
                    help='output format (default: table)')
    rb.add_argument('--cloud', metavar='NAME',
                    help='clouds.yaml cloud to use instead of [kronos_nova]')
    rb.add_argument('--periodic', action='store_true',
                    help='run again every --interval seconds until stopped')
    rb.add_argument('--interval', type=int, metavar='SECONDS',
                    help='seconds between periodic runs (default: '
                         '[kronos_rebalance] interval, else 300)')

    actions.add_parser(
        'validate-policies', help='check the policies file and exit',
        description='Load [kronos] policies_file, report every error with '
                    'the file, policy and field, and print the policies.')


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
    return conf


def connect(conf, cloud=None):
    """An openstacksdk Connection from clouds.yaml or ``[kronos_nova]``."""
    from keystoneauth1 import loading as ks_loading
    import openstack
    cloud = cloud or conf.kronos_rebalance.cloud
    try:
        if cloud:
            # No pinned compute microversion: openstacksdk negotiates each
            # call (live migration >= 2.30, server groups 2.64, ...).
            return openstack.connect(cloud=cloud)
        auth = ks_loading.load_auth_from_conf_options(conf, 'kronos_nova')
        sess = ks_loading.load_session_from_conf_options(
            conf, 'kronos_nova', auth=auth)
        opts = conf.kronos_nova
        return openstack.connection.Connection(
            session=sess, region_name=opts.region_name,
            interface=(opts.valid_interfaces or ['public'])[0])
    except Exception as e:
        raise CommandError(
            'cannot set up Nova API credentials (%s); set [kronos_nova] '
            'auth_type/auth_url/... in nova.conf or --cloud NAME: %s'
            % ('cloud %s' % cloud if cloud else '[kronos_nova]', e),
            EXIT_BAD_INPUT) from e


def _load_policies(conf):
    """The validated policies file; a bad one is exit code 2."""
    try:
        return policy_mod.load_file(conf.kronos.policies_file)
    except policy_mod.PolicyError as e:
        raise CommandError(str(e), EXIT_BAD_INPUT) from e


def rebalance(conf, args, conn=None, out=sys.stdout, metric_source=None):
    """Run one rebalance cycle and return its exit code.

    :param conn: an openstacksdk Connection (built from config if None).
    :param metric_source: a :class:`nova_kronos.metrics.MetricSource`
        (loaded by name from ``[kronos] metric_source`` if None).
    """
    from nova_kronos.cloud import executor
    from nova_kronos.cloud import inventory

    opts = conf.kronos_rebalance
    execute = (not opts.dry_run) if args.execute is None else args.execute
    budget = (opts.max_migrations if args.max_migrations is None
              else args.max_migrations)
    if budget < 0:
        raise CommandError('--max-migrations must be >= 0', EXIT_BAD_INPUT)
    policy_set = _load_policies(conf)
    try:
        planner = planner_mod.load_planner(
            opts.planner, min_improvement=opts.min_improvement)
    except planner_mod.PlannerError as e:
        raise CommandError(str(e), EXIT_BAD_INPUT) from e
    if conn is None:
        conn = connect(conf, args.cloud)
    try:
        fleet = inventory.read_fleet(
            conn, aggregates=args.aggregates or opts.aggregates,
            availability_zone=args.availability_zone or opts.availability_zone)
    except inventory.ScopeError as e:
        raise CommandError(str(e), EXIT_BAD_INPUT) from e
    except inventory.InventoryError as e:
        raise CommandError(str(e), EXIT_UNAVAILABLE) from e
    try:
        source = metric_source or metrics.load_source(
            conf.kronos.metric_source, conf)
        snapshot = source.collect(policy_set, hosts=fleet.hosts,
                                  known_hosts=fleet.known_hosts or None)
    except metrics.MetricsError as e:
        raise CommandError('cannot read metrics, nothing planned or '
                           'migrated: %s' % e, EXIT_UNAVAILABLE) from e

    plan = planner.plan(fleet, policy_set, snapshot, budget)
    results = None
    if execute and plan.moves:
        results = executor.execute(conn, plan.moves,
                                   timeout=opts.migration_timeout,
                                   poll_interval=opts.poll_interval)
    render(plan, results, execute, args.format, out)
    if results is not None:
        return (EXIT_OK if all(r.status == executor.SUCCEEDED
                               for r in results) else EXIT_MOVE_FAILED)
    if not execute and plan.moves:
        return EXIT_WORK_FOUND
    return EXIT_OK


def render(plan, results, execute, fmt, out):
    """Print a plan (and execution results) as a table or JSON."""
    if fmt == 'json':
        doc = {
            'mode': 'execute' if execute else 'dry-run',
            'aggregates': [{
                'name': a.name, 'hosts': a.hosts,
                'imbalance_before': a.imbalance_before,
                'imbalance_after': a.imbalance_after,
                'dispersion_before': a.dispersion_before,
                'dispersion_after': a.dispersion_after,
                'loads_before': a.loads_before, 'loads_after': a.loads_after,
                'rejected_candidates': a.rejections,
            } for a in plan.aggregates],
            'moves': [{
                'server_id': m.server_id, 'server_name': m.server_name,
                'source': m.source, 'destination': m.destination,
                'aggregate': m.aggregate, 'reason': m.reason,
                'imbalance_before': m.imbalance_before,
                'imbalance_after': m.imbalance_after,
            } for m in plan.moves],
            'results': [{
                'server_id': r.move.server_id, 'status': r.status,
                'host': r.host, 'detail': r.detail,
                'seconds': round(r.seconds, 3),
            } for r in results or ()],
            'excluded': [{'kind': k, 'name': n, 'reason': r}
                         for k, n, r in plan.exclusions],
        }
        json.dump(doc, out, indent=2, sort_keys=True)
        out.write('\n')
        return
    w = out.write
    mode = ('execute' if execute
            else 'dry run (nothing is migrated; use --execute)')
    w('Mode: %s\n' % mode)
    for a in plan.aggregates:
        n_moves = sum(1 for m in plan.moves if m.aggregate == a.name)
        w('\nAggregate %s: %d hosts, imbalance %.4f -> %.4f predicted, '
          '%d move(s)\n' % (a.name, len(a.hosts), a.imbalance_before,
                            a.imbalance_after, n_moves))
        policies = list(a.loads_before)
        header = ['host'] + ['%s before/after' % p for p in policies]
        rows = [[h] + ['%.3f / %.3f' % (a.loads_before[p][h],
                                        a.loads_after[p][h])
                       for p in policies] for h in a.hosts]
        _table(w, header, rows)
        if a.rejections:
            w('  candidate moves rejected in the last step: %s\n' % ', '.join(
                '%s %d' % kv for kv in sorted(a.rejections.items())))
    w('\nMoves (%d):\n' % len(plan.moves))
    if plan.moves:
        by_move = {id(r.move): r for r in results or ()}
        header = ['#', 'server', 'name', 'source', 'destination',
                  'imbalance', 'reason']
        if results is not None:
            header.append('result')
        rows = []
        for i, m in enumerate(plan.moves, 1):
            row = [str(i), m.server_id, m.server_name, m.source,
                   m.destination, '%.4f -> %.4f' % (m.imbalance_before,
                                                    m.imbalance_after),
                   m.reason]
            if results is not None:
                r = by_move.get(id(m))
                row.append('%s: %s' % (r.status, r.detail) if r else '')
            rows.append(row)
        _table(w, header, rows)
    if plan.exclusions:
        w('\nExcluded (%d):\n' % len(plan.exclusions))
        for kind, name, reason in plan.exclusions:
            w('  %s %s: %s\n' % (kind, name, reason))


def _table(w, header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows)
              for i in range(len(header))]
    for row in [header] + rows:
        w('  ' + '  '.join(str(c).ljust(widths[i])
                           for i, c in enumerate(row)).rstrip() + '\n')


def validate_policies(conf, out=sys.stdout):
    policy_set = _load_policies(conf)
    out.write('%s: OK\n' % policy_set.source)
    for p in policy_set.policies:
        out.write('  %s: %s, weight %g, threshold %g%s\n' % (
            p.name, p.mode, p.weight, p.threshold,
            '' if p.enabled else ' (disabled)'))
    return EXIT_OK


def main(argv=None, conn=None, out=None, err=None, metric_source=None):
    """Console-script entry point; returns the exit code.

    :param argv: arguments without the program name (default sys.argv[1:]).
    :param conn: openstacksdk Connection to use instead of building one
        (functional tests hand in one that reaches an in-process Nova).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        conf = build_conf(argv)
        logging.setup(conf, 'nova-kronos-manage')
        category = conf.category
        if category.action == 'validate-policies':
            return validate_policies(conf, out)
        if not category.periodic:
            return rebalance(conf, category, conn, out, metric_source)
        interval = (category.interval or conf.kronos_rebalance.interval
                    or 300)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        code = EXIT_OK
        while not stop.is_set():
            try:
                code = rebalance(conf, category, conn, out, metric_source)
            except CommandError as e:
                # A periodic run survives a bad cycle (Prometheus restart).
                err.write('ERROR: %s\n' % e)
                code = e.code
            out.flush()
            stop.wait(interval)
        return code
    except CommandError as e:
        err.write('ERROR: %s\n' % e)
        return e.code
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        LOG.exception('unexpected error')
        err.write('ERROR: unexpected %s: %s\n' % (type(e).__name__, e))
        return EXIT_UNEXPECTED


if __name__ == '__main__':
    sys.exit(main())
