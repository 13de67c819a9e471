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


"""The rebalance use case (nova_kronos.rebalance) and its exit codes.

Nova is faked at the module boundary (inventory.read_fleet and
scope_names, migrations.records, executor.execute); policies, metrics
collection, the planner, Nova's-records memory and the tooz file locks
are real.
"""

import io
import json
import os
from unittest import mock

import fixtures
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
import testtools

from nova_kronos.cloud import executor
from nova_kronos.cloud import inventory
from nova_kronos.cloud import migrations
from nova_kronos.cmd import manage
from nova_kronos import conf as kronos_conf
from nova_kronos import coordination
from nova_kronos import metrics
from nova_kronos import rebalance
from tests.unit import fakes

POLICIES = """\
policies:
  cpu: {mode: spread, weight: 0.5, threshold: 0.9, host_query: cpu_host,
        host_label: nodename, vm_query: cpu_vm, vm_label: instance_id}
  mem: {mode: spread, weight: 0.5, threshold: 0.9, host_query: mem_host,
        host_label: nodename, vm_query: mem_vm, vm_label: instance_id}
"""


class SnapshotSource(metrics.MetricSource):
    """Returns a prepared snapshot, or raises a prepared error."""

    def __init__(self, *answers):
        super().__init__()
        self.answers = list(answers)
        self.calls = 0

    def collect(self, policy_set, hosts=None, vms=True, known_hosts=None):
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 \
            else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


class NoConn:
    """A connection that must never be used."""

    def __getattr__(self, name):
        raise AssertionError('the Nova API was touched (%s)' % name)


class RebalanceTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        tmp = self.tmp = self.useFixture(fixtures.TempDir()).path
        self.policies_file = os.path.join(tmp, 'policies.yaml')
        with open(self.policies_file, 'w') as f:
            f.write(POLICIES)
        self.conf = cfg.ConfigOpts()
        kronos_conf.register_opts(self.conf)
        self.conf([])
        self.cfg = self.useFixture(cfg_fixture.Config(self.conf))
        self.cfg.config(policies_file=self.policies_file, group='kronos')
        # Nova's rules are checked in the functional tests (real Nova).
        self.cfg.config(feasibility='none', state_dir=tmp,
                        group='kronos_rebalance')
        # host1 carries six servers of 0.1 each, host2 none: worth moving.
        self.fleet, self.snapshot = fakes.build(
            {'host1': ['s%d' % i for i in range(6)], 'host2': []})
        self.read_fleet = self.useFixture(fixtures.MockPatchObject(
            inventory, 'read_fleet', return_value=self.fleet)).mock
        self.execute = self.useFixture(fixtures.MockPatchObject(
            executor, 'execute', side_effect=self._succeed)).mock
        self.scope = self.useFixture(fixtures.MockPatchObject(
            inventory, 'scope_names', return_value=['agg1'])).mock
        self.records = self.useFixture(fixtures.MockPatchObject(
            migrations, 'records', return_value=[])).mock

    @staticmethod
    def _succeed(conn, moves, **kw):
        return [executor.MoveResult(m, executor.SUCCEEDED, m.destination)
                for m in moves]

    def run_once(self, source=None, stop=None, **request):
        req = rebalance.Request.from_conf(self.conf, **request)
        return rebalance.run(self.conf, req, conn=NoConn(),
                             metric_source=source or SnapshotSource(
                                 self.snapshot), stop=stop)


class TestRequest(RebalanceTestCase):

    def test_defaults_come_from_kronos_rebalance(self):
        self.cfg.config(aggregates=['a', 'b'], availability_zone='az9',
                        max_migrations=7, cloud='c1',
                        group='kronos_rebalance')
        req = rebalance.Request.from_conf(self.conf)
        # dry_run defaults to True: no migration unless asked.
        self.assertEqual(rebalance.Request(('a', 'b'), 'az9', False, 7, 'c1'),
                         req)

    def test_arguments_override_options(self):
        self.cfg.config(dry_run=True, max_migrations=7,
                        group='kronos_rebalance')
        req = rebalance.Request.from_conf(
            self.conf, aggregates=['x'], execute=True, max_migrations=0)
        self.assertEqual(('x',), req.aggregates)
        self.assertTrue(req.execute)
        self.assertEqual(0, req.max_migrations)

    def test_negative_budget_is_bad_input(self):
        e = self.assertRaises(rebalance.BadInput, rebalance.Request.from_conf,
                              self.conf, max_migrations=-1)
        self.assertIn('--max-migrations must be >= 0', str(e))


class TestRun(RebalanceTestCase):

    def test_dry_run_plans_and_submits_nothing(self):
        outcome = self.run_once()
        self.assertTrue(outcome.plan.moves)
        self.assertIsNone(outcome.results)
        self.assertFalse(outcome.executed)
        self.assertTrue(outcome.work_found)
        self.execute.assert_not_called()
        self.assertEqual(manage.EXIT_WORK_FOUND, manage.exit_code(outcome))

    def test_the_oracle_vets_every_move_and_is_reported(self):
        from tests.unit import test_feasibility
        oracle = test_feasibility.RuleOracle({None: {'host1'}})
        oracle.mode, oracle.rules = 'api', ['Placement']
        oracle.not_evaluated = ()
        self.useFixture(fixtures.MockPatchObject(
            rebalance, 'nova_rules_oracle', return_value=oracle))
        outcome = self.run_once()
        # Every server may only stay on host1: nothing is worth planning,
        # and each server says why.
        self.assertEqual([], outcome.plan.moves)
        self.assertEqual('api', outcome.plan.feasibility['mode'])
        refused = [n for k, n, r in outcome.plan.exclusions
                   if 'host2 refused by AggregateInstanceExtraSpecsFilter'
                   in r]
        self.assertEqual(sorted('s%d' % i for i in range(6)), sorted(refused))
        doc = manage.outcome_document(outcome)
        self.assertEqual(1, doc['feasibility']['pairs_asked'])
        out = io.StringIO()
        manage.render_table(outcome, out)
        self.assertIn("Nova's rules (api mode) checked every move",
                      out.getvalue())

    def test_dry_run_with_nothing_to_do_is_ok(self):
        outcome = self.run_once(max_migrations=0)
        self.assertEqual([], outcome.plan.moves)
        self.assertFalse(outcome.work_found)
        self.assertEqual(manage.EXIT_OK, manage.exit_code(outcome))

    def test_execute_submits_the_plan_with_configured_timeouts(self):
        self.cfg.config(migration_timeout=77, poll_interval=0.5,
                        group='kronos_rebalance')
        outcome = self.run_once(execute=True, max_migrations=2)
        self.assertEqual(2, len(outcome.plan.moves))
        self.execute.assert_called_once_with(
            mock.ANY, outcome.plan.moves, timeout=77, poll_interval=0.5,
            max_parallel=2, max_failures=3, groups={}, stop=mock.ANY)
        self.assertEqual([], outcome.failed_moves)
        self.assertEqual(manage.EXIT_OK, manage.exit_code(outcome))

    def test_one_failed_move_is_exit_1(self):
        def one_fails(conn, moves, **kw):
            results = self._succeed(conn, moves)
            results[-1].status = executor.FAILED
            return results
        self.execute.side_effect = one_fails
        outcome = self.run_once(execute=True, max_migrations=2)
        self.assertEqual(1, len(outcome.failed_moves))
        self.assertEqual(manage.EXIT_MOVE_FAILED, manage.exit_code(outcome))

    def test_execute_with_empty_plan_submits_nothing(self):
        outcome = self.run_once(execute=True, max_migrations=0)
        self.execute.assert_not_called()
        self.assertEqual([], outcome.results)
        self.assertEqual(manage.EXIT_OK, manage.exit_code(outcome))

    def test_bad_policies_file_before_touching_nova(self):
        with open(self.policies_file, 'w') as f:
            f.write('policies:\n  cpu:\n    mode: sideways\n')
        e = self.assertRaises(rebalance.BadInput, self.run_once)
        self.assertIn(self.policies_file, str(e))
        self.read_fleet.assert_not_called()

    def test_unknown_planner_is_bad_input(self):
        self.cfg.config(planner='nope', group='kronos_rebalance')
        e = self.assertRaises(rebalance.BadInput, self.run_once)
        self.assertIn("'nope'", str(e))
        self.read_fleet.assert_not_called()

    def test_unknown_aggregate_is_bad_input(self):
        self.read_fleet.side_effect = inventory.ScopeError('no agg x')
        self.assertRaises(rebalance.BadInput, self.run_once)

    def test_nova_unreachable_is_unavailable(self):
        self.read_fleet.side_effect = inventory.InventoryError('503')
        self.assertRaises(rebalance.Unavailable, self.run_once)

    def test_metrics_unreachable_plans_and_moves_nothing(self):
        source = SnapshotSource(metrics.MetricsError('connection refused'))
        e = self.assertRaises(rebalance.Unavailable, self.run_once,
                              source=source, execute=True)
        self.assertIn('cannot read metrics, nothing planned or migrated',
                      str(e))
        self.execute.assert_not_called()


class TestRounds(RebalanceTestCase):

    def refuse_first(self, conn, moves, **kw):
        results = self._succeed(conn, moves)
        if self.execute.call_count == 1:
            results[0] = executor.MoveResult(moves[0], executor.REFUSED,
                                             moves[0].source, 'no')
        return results

    def test_refused_move_is_quarantined_and_the_rest_replanned(self):
        self.execute.side_effect = self.refuse_first
        outcome = self.run_once(execute=True, max_migrations=4)
        first, second = outcome.plans
        # host1 holds 6 servers of 0.1, host2 none: 3 moves even them out
        # (0.3 / 0.3); the first is refused, so round 2 has one move of
        # budget left (4 - 3 submitted) to finish the job.
        self.assertEqual(3, len(first.moves))
        self.assertEqual(1, len(second.moves))
        refused = first.moves[0]
        self.assertNotIn((refused.server_id, refused.destination),
                         [(m.server_id, m.destination)
                          for m in second.moves])
        self.assertEqual(4, len(outcome.results))
        self.assertEqual(manage.EXIT_MOVE_FAILED, manage.exit_code(outcome))
        # The fresh read: inventory, metrics and Nova's records again.
        self.assertEqual(2, self.read_fleet.call_count)
        self.assertEqual(2, self.records.call_count)

    def test_no_budget_left_no_second_round(self):
        self.execute.side_effect = self.refuse_first
        outcome = self.run_once(execute=True, max_migrations=3)
        self.assertEqual(1, len(outcome.plans))

    def test_max_failures_ends_the_run(self):
        self.cfg.config(max_failures=1, group='kronos_rebalance')
        self.execute.side_effect = self.refuse_first
        outcome = self.run_once(execute=True, max_migrations=5)
        self.assertEqual(1, len(outcome.plans))
        self.assertEqual(1, self.execute.call_count)

    def test_stop_before_execution_submits_nothing(self):
        stop = executor.Stop()
        stop.request('SIGTERM')
        outcome = self.run_once(execute=True, max_migrations=2, stop=stop)
        self.execute.assert_not_called()
        self.assertEqual([executor.NOT_STARTED] * 2,
                         [r.status for r in outcome.results])
        self.assertEqual(143, manage.exit_code(outcome))

    def test_no_usable_load_is_unavailable(self):
        for p in self.snapshot.data.values():
            p.hosts.clear()
        e = self.assertRaises(rebalance.Unavailable, self.run_once,
                              execute=True)
        self.assertIn('no usable load for any host of aggregate agg1',
                      str(e))
        self.execute.assert_not_called()

    def test_migration_records_unreadable_is_unavailable(self):
        self.records.side_effect = migrations.NovaError('HTTP 503')
        e = self.assertRaises(rebalance.Unavailable, self.run_once)
        self.assertIn("cannot read Nova's migration records", str(e))

    def test_a_held_lock_moves_nothing(self):
        url = coordination.backend_url(self.conf.kronos_rebalance)
        with coordination.aggregate_locks(url, ['agg1'], 0):
            e = self.assertRaises(rebalance.Locked, self.run_once,
                                  execute=True)
        self.assertIn('another rebalance holds the lock of aggregate agg1',
                      str(e))
        self.read_fleet.assert_not_called()
        # Released: the next run goes through.
        self.run_once(execute=True)
        self.assertEqual(1, self.execute.call_count)

    def test_dry_run_takes_no_lock(self):
        url = coordination.backend_url(self.conf.kronos_rebalance)
        with coordination.aggregate_locks(url, ['agg1'], 0):
            outcome = self.run_once()
        self.assertTrue(outcome.plan.moves)


class TestPeriodic(RebalanceTestCase):

    def test_a_failed_cycle_does_not_end_the_loop(self):
        source = SnapshotSource(metrics.MetricsError('down'), self.snapshot)
        stop = executor.Stop()
        reports = []

        def report(outcome, error):
            reports.append((outcome, error))
            if len(reports) == 2:
                stop.request('SIGTERM')

        req = rebalance.Request.from_conf(self.conf)
        last = rebalance.run_periodic(self.conf, req, 0.01, stop, report,
                                      conn=NoConn(), metric_source=source)
        self.assertEqual(2, len(reports))
        self.assertIsNone(reports[0][0])
        self.assertIsInstance(reports[0][1], rebalance.Unavailable)
        self.assertIsNone(reports[1][1])
        self.assertIs(reports[1][0], last)
        self.assertTrue(last.plan.moves)

    def test_a_stop_ends_the_wait_at_once(self):
        stop = executor.Stop()
        reports = []

        def report(outcome, error):
            reports.append(outcome)
            stop.request('SIGTERM')

        req = rebalance.Request.from_conf(self.conf)
        # An hour's interval: the test would hang if the wait ignored it.
        rebalance.run_periodic(self.conf, req, 3600, stop, report,
                               conn=NoConn(),
                               metric_source=SnapshotSource(self.snapshot))
        self.assertEqual(1, len(reports))


class TestCommandExitCodes(RebalanceTestCase):

    extra_conf = ''

    def main(self, *args, action='rebalance'):
        path = os.path.join(os.path.dirname(self.policies_file), 'nova.conf')
        with open(path, 'w') as f:
            f.write('[kronos]\npolicies_file = %s\n' % self.policies_file)
            f.write('[kronos_rebalance]\nfeasibility = none\n'
                    'state_dir = %s\n%s' % (self.tmp, self.extra_conf))
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', path, 'kronos', action]
                           + list(args), conn=NoConn(), out=out, err=err,
                           metric_source=SnapshotSource(self.snapshot))
        return code, out.getvalue(), err.getvalue()

    def test_inventory_error_is_exit_3(self):
        self.read_fleet.side_effect = inventory.InventoryError('Nova 503')
        code, out, err = self.main()
        self.assertEqual(manage.EXIT_UNAVAILABLE, code)
        self.assertIn('Nova 503', err)
        self.assertEqual('', out)

    def test_dry_run_table_lists_moves(self):
        code, out, err = self.main('--max-migrations', '1')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertIn('dry run (nothing is migrated; use --execute)', out)
        self.assertIn('Moves (1):', out)
        self.assertIn('| host1  ', out)

    def test_held_lock_is_exit_5(self):
        url = coordination.backend_url(self.conf.kronos_rebalance)
        with coordination.aggregate_locks(url, ['agg1'], 0):
            code, out, err = self.main('--execute', '--lock-timeout', '0.2')
        self.assertEqual(manage.EXIT_LOCKED, code)
        self.assertIn('waited 0.2 s', err)
        self.execute.assert_not_called()

    def test_bad_config_value_is_exit_2_naming_it(self):
        self.extra_conf = 'migration_timeout = abc\n'
        code, out, err = self.main('--execute')
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('[kronos_rebalance] migration_timeout', err)
        self.assertNotIn('Traceback', err)
        self.read_fleet.assert_not_called()

    def test_missing_ca_file_is_exit_2(self):
        self.extra_conf = ('[kronos_prometheus]\n'
                           'ca_file = /nonexistent/kronos-ca.pem\n')
        code, out, err = self.main()
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('ERROR: bad value of [kronos_prometheus] ca_file: '
                      '/nonexistent/kronos-ca.pem does not exist', err)

    def test_out_of_range_config_value_is_exit_2(self):
        self.extra_conf = 'max_parallel = 0\n'
        code, out, err = self.main()
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('max_parallel', err)

    def test_negative_interval_is_exit_2(self):
        stderr = self.useFixture(fixtures.StringStream('stderr')).stream
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        code, out, err = self.main('--periodic', '--interval', '-5')
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        stderr.seek(0)
        self.assertIn('--interval: must be > 0, got -5', stderr.read())
        self.read_fleet.assert_not_called()

    def test_json_stdout_is_not_polluted_by_logs(self):
        # oslo.log's default handler would write INFO lines to sys.stdout.
        stdout = io.StringIO()
        stderr = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', stdout))
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stderr))
        self.addCleanup(self._reset_root_handlers, list(
            __import__('logging').getLogger().handlers))
        path = os.path.join(self.tmp, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[DEFAULT]\ndebug = true\n[kronos]\npolicies_file = '
                    '%s\n[kronos_rebalance]\nfeasibility = none\n'
                    'state_dir = %s\n' % (self.policies_file, self.tmp))
        code = manage.main(['--config-file', path, 'kronos', 'rebalance',
                            '--execute', '--format', 'json'],
                           conn=NoConn(),
                           metric_source=SnapshotSource(self.snapshot))
        self.assertEqual(manage.EXIT_OK, code, stderr.getvalue())
        doc = json.loads(stdout.getvalue())
        self.assertEqual('execute', doc['mode'])
        self.assertIn('kronos: rebalance execute', stderr.getvalue())

    @staticmethod
    def _reset_root_handlers(saved):
        import logging
        root = logging.getLogger()
        for h in list(root.handlers):
            if h not in saved:
                root.removeHandler(h)
        root.handlers[:] = saved


class TestSettingsDrainAndPack(RebalanceTestCase):

    def test_settings_come_from_options_and_flags_win(self):
        self.cfg.config(aggressiveness=4, max_migrated_gib=10.0,
                        migration_cost=False, group='kronos_rebalance')
        req = rebalance.Request.from_conf(self.conf, aggressiveness=2)
        self.assertEqual(2, req.settings.aggressiveness)
        self.assertEqual(10.0, req.settings.max_migrated_gib)
        self.assertFalse(req.settings.migration_cost)
        e = self.assertRaises(rebalance.BadInput, rebalance.Request.from_conf,
                              self.conf, target_imbalance=0.9)
        self.assertIn('target imbalance must be within [0, 0.5]', str(e))

    def test_deprecated_min_improvement_is_ignored(self):
        # It used to stop this plan (one move lowers sigma by less).
        self.cfg.config(min_improvement=0.5, group='kronos_rebalance')
        self.assertTrue(self.run_once().plan.moves)

    def test_drain_moves_every_server_off_the_host(self):
        # Not bounded by [kronos_rebalance] max_migrations (5).
        outcome = self.run_once(drain_hosts=['host1'])
        self.assertEqual('drain', outcome.plan.planner)
        self.assertEqual(6, len(outcome.plan.moves))
        self.assertEqual({'host2'}, {m.destination
                                     for m in outcome.plan.moves})
        self.assertEqual(['host1'], outcome.plan.aggregates[0].freed_hosts)
        # The inventory is read for the drained host's aggregates.
        self.assertEqual(('host1',),
                         self.read_fleet.call_args.kwargs['hosts'])

    def test_drain_disabled_drains_only_when_a_disabled_host_holds_servers(
            self):
        outcome = self.run_once(drain_disabled=True)
        self.assertEqual('spread', outcome.plan.planner)
        self.fleet.hosts['host1'].usable = False
        self.fleet.hosts['host1'].disabled = True
        self.fleet.hosts['host1'].unusable_reason = 'disabled'
        outcome = self.run_once(drain_disabled=True)
        self.assertEqual('drain', outcome.plan.planner)
        # Within the rebalance budget ([kronos_rebalance] max_migrations
        # 5): the next run goes on.
        self.assertEqual(5, len(outcome.plan.moves))
        self.assertIn('budget of 5 live migration(s) is spent',
                      outcome.plan.deferred[0][1])
        # Not an error: the next run goes on (exit 4, work found).
        self.assertEqual([], outcome.unmovable)
        self.assertEqual(manage.EXIT_WORK_FOUND, manage.exit_code(outcome))

    def test_pack_planner_by_name(self):
        outcome = self.run_once(planner='pack')
        self.assertEqual('pack', outcome.plan.planner)
        # Both policies are spread-mode here: nothing to pack.
        self.assertEqual([], outcome.plan.moves)

    def test_unmovable_server_is_exit_1(self):
        self.fleet.hosts['host2'].usable = False
        self.fleet.hosts['host2'].unusable_reason = 'down'
        outcome = self.run_once(drain_hosts=['host1'])
        self.assertEqual(6, len(outcome.unmovable))
        self.assertEqual(manage.EXIT_MOVE_FAILED, manage.exit_code(outcome))


class TestDrainCommand(TestCommandExitCodes):

    def drain(self, *args):
        return self.main(*args, action='drain')

    def test_drain_dry_run_json(self):
        code, out, err = self.drain('--host', 'host1', '--format', 'json')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        doc = json.loads(out)
        self.assertEqual('drain', doc['planner'])
        self.assertEqual(6, len(doc['moves']))
        self.assertEqual(['host1'], doc['aggregates'][0]['freed_hosts'])
        self.assertEqual([], doc['unmovable'])
        # Six 1 GiB servers (fakes), RAM only.
        self.assertEqual(6.0, doc['migrated_gib'])
        self.assertEqual(1.0, doc['moves'][0]['gib'])

    def test_drain_needs_a_host(self):
        code, out, err = self.drain()
        self.assertEqual(manage.EXIT_BAD_INPUT, code)

    def test_drain_table_says_what_stays(self):
        self.fleet.hosts['host2'].usable = False
        self.fleet.hosts['host2'].unusable_reason = 'down'
        code, out, err = self.drain('--host', 'host1')
        self.assertEqual(manage.EXIT_MOVE_FAILED, code, err)
        self.assertIn('Left on the drained host(s) (6):', out)
        self.assertIn('no host of its aggregate accepts it: host-usable 1',
                      out)

    def test_rebalance_flags(self):
        code, out, err = self.main('--aggressiveness', '5',
                                   '--max-migrated-gib', '2',
                                   '--no-migration-cost')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertIn('Planner: spread, aggressiveness 5, tolerated '
                      'imbalance 0, migration cost off, at most 2 GiB', out)
        self.assertIn('Moves (2):', out)
        self.assertIn('Live migrations copy 2.0 GiB', out)
        code, out, err = self.main('--aggressiveness', '7')
        self.assertEqual(manage.EXIT_BAD_INPUT, code)


class TestDrainRounds(RebalanceTestCase):

    def test_servers_waiting_for_room_are_planned_in_the_next_round(self):
        from nova_kronos import planner as planner_mod

        first = planner_mod.Plan(planner='drain', moves=[planner_mod.Move(
            's0', 'vm-s0', 'host1', 'host2', 'agg1', 'makes room', 0, 0)],
            waiting=[('s1', 'waits for the room ...')])
        second = planner_mod.Plan(planner='drain', moves=[planner_mod.Move(
            's1', 'vm-s1', 'host1', 'host2', 'agg1', 'drains host1', 0, 0)])

        class Scripted:
            plans = [first, second]

            def plan(self, *args, **kwargs):
                return self.plans.pop(0)

        self.useFixture(fixtures.MockPatchObject(
            rebalance, 'drain_planner', return_value=Scripted()))
        outcome = self.run_once(drain_hosts=['host1'], execute=True)
        self.assertEqual(2, len(outcome.plans))
        self.assertEqual(['s0', 's1'], [m.server_id for m in outcome.moves])
        self.assertEqual([], outcome.unmovable)
        self.assertEqual(manage.EXIT_OK, manage.exit_code(outcome))

    def test_a_dry_run_shows_who_waits(self):
        from nova_kronos import planner as planner_mod

        plan = planner_mod.Plan(planner='drain', moves=[planner_mod.Move(
            's0', 'vm-s0', 'host1', 'host2', 'agg1', 'makes room', 0, 0)],
            waiting=[('s1', 'waits for the room the move of s0 makes')])

        class Scripted:
            def plan(self, *args, **kwargs):
                return plan

        self.useFixture(fixtures.MockPatchObject(
            rebalance, 'drain_planner', return_value=Scripted()))
        outcome = self.run_once(drain_hosts=['host1'])
        self.assertEqual(manage.EXIT_WORK_FOUND, manage.exit_code(outcome))
        doc = manage.outcome_document(outcome)
        self.assertEqual([{'server_id': 's1', 'reason': 'waits for the room '
                           'the move of s0 makes'}], doc['waiting'])
        out = io.StringIO()
        manage.render_table(outcome, out)
        self.assertIn('Waiting for room a planned move makes (1):',
                      out.getvalue())


class TestDrainScope(testtools.TestCase):
    """Which aggregates a drain works in (inventory.scope_names)."""

    class Conn:
        def __init__(self, aggregates):
            self.compute = self
            self._aggregates = aggregates

        def aggregates(self):
            return list(self._aggregates)

    def conn(self):
        from types import SimpleNamespace as Agg
        return self.Conn([
            Agg(name='a1', hosts=['h1', 'h2'], availability_zone='az1'),
            Agg(name='a2', hosts=['h2', 'h3'], availability_zone='az1'),
            Agg(name='a3', hosts=['h4'], availability_zone='az2')])

    def test_every_aggregate_holding_a_drained_host(self):
        self.assertEqual(['a1', 'a2'], inventory.scope_names(
            self.conn(), hosts=('h2',)))
        self.assertEqual(['a1', 'a3'], inventory.scope_names(
            self.conn(), hosts=('h1', 'h4')))

    def test_named_aggregates_win(self):
        self.assertEqual(['a2'], inventory.scope_names(
            self.conn(), aggregates=['a2'], hosts=('h2',)))

    def test_a_host_outside_the_scope_is_bad_input(self):
        e = self.assertRaises(inventory.ScopeError, inventory.scope_names,
                              self.conn(), aggregates=['a1'], hosts=('h3',))
        self.assertIn('host h3 is in no host aggregate of the scope', str(e))
        e = self.assertRaises(inventory.ScopeError, inventory.scope_names,
                              self.conn(), hosts=('nosuch',))
        self.assertIn('host nosuch', str(e))
