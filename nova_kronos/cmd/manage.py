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
import prettytable

from nova_kronos import conf as kronos_conf
from nova_kronos import rebalance as rebalance_mod

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


def exit_code(outcome):
    """nova-manage's convention for a finished run (see the module doc)."""
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
    return EXIT_BAD_INPUT


def _request(conf, args):
    return rebalance_mod.Request.from_conf(
        conf, aggregates=args.aggregates,
        availability_zone=args.availability_zone, execute=args.execute,
        max_migrations=args.max_migrations, cloud=args.cloud)


def outcome_document(outcome):
    """The JSON-ready dict of an :class:`~nova_kronos.rebalance.Outcome`.

    Keys: ``mode`` (``dry-run`` or ``execute``), ``aggregates`` (loads and
    imbalance before/after, rejected candidates per constraint), ``moves``
    (in plan order), ``results`` (one per move when executed, else empty)
    ``excluded`` (hosts and servers left out, with the reason) and
    ``feasibility`` (which of Nova's rules checked each move, and how many
    (server, host) pairs were asked; null when not checked).
    """
    plan = outcome.plan
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
        } for r in outcome.results or ()],
        'excluded': [{'kind': k, 'name': n, 'reason': r}
                     for k, n, r in plan.exclusions],
        'feasibility': dict(plan.feasibility,
                            pairs_asked=plan.oracle_queries)
        if plan.feasibility else None,
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
    w('\nMoves (%d):\n' % len(plan.moves))
    if plan.moves:
        by_move = {id(r.move): r for r in results or ()}
        header = ['#', 'server', 'name', 'source', 'destination',
                  'imbalance', 'reason']
        if results is not None:
            header.append('result')
        rows = []
        for i, m in enumerate(plan.moves, 1):
            row = [i, m.server_id, m.server_name, m.source, m.destination,
                   '%.4f -> %.4f' % (m.imbalance_before, m.imbalance_after),
                   m.reason]
            if results is not None:
                r = by_move.get(id(m))
                row.append('%s: %s' % (r.status, r.detail) if r else '')
            rows.append(row)
        w(_table(header, rows))
    if plan.exclusions:
        w('\nExcluded (%d):\n' % len(plan.exclusions))
        w(_table(['kind', 'name', 'reason'], plan.exclusions))


def render(outcome, fmt, out):
    """Print an outcome as ``table`` or ``json``."""
    if fmt == 'json':
        json.dump(outcome_document(outcome), out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        render_table(outcome, out)


def validate_policies(conf, out=sys.stdout):
    policy_set = rebalance_mod.load_policies(conf)
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
    :param metric_source: a metric source to use instead of loading
        ``[kronos] metric_source``.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        conf = build_conf(argv)
        logging.setup(conf, 'nova-kronos-manage')
        args = conf.category
        if args.action == 'validate-policies':
            return validate_policies(conf, out)
        request = _request(conf, args)
        if not args.periodic:
            outcome = rebalance_mod.run(conf, request, conn=conn,
                                        metric_source=metric_source)
            render(outcome, args.format, out)
            return exit_code(outcome)
        return _periodic(conf, args, request, conn, metric_source, out, err)
    except CommandError as e:
        _write_error(err, e)
        return e.code
    except rebalance_mod.RebalanceError as e:
        _write_error(err, e)
        return _error_code(e)
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        LOG.exception('unexpected error')
        err.write('ERROR: unexpected %s: %s\n' % (type(e).__name__, e))
        return EXIT_UNEXPECTED


def _periodic(conf, args, request, conn, metric_source, out, err):
    interval = args.interval or conf.kronos_rebalance.interval or 300
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())

    def report(outcome, error):
        if error is not None:
            _write_error(err, error)
        else:
            render(outcome, args.format, out)
        out.flush()

    last = rebalance_mod.run_periodic(conf, request, interval, stop, report,
                                      conn=conn, metric_source=metric_source)
    if isinstance(last, rebalance_mod.RebalanceError):
        return _error_code(last)
    return EXIT_OK if last is None else exit_code(last)


if __name__ == '__main__':
    sys.exit(main())
