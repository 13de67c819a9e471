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

Nova is faked at the module boundary (inventory.read_fleet,
executor.execute); policies, metrics collection and the planner are real.
"""

import io
import os
import threading
from unittest import mock

import fixtures
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
import testtools

from nova_kronos.cloud import executor
from nova_kronos.cloud import inventory
from nova_kronos.cmd import manage
from nova_kronos import conf as kronos_conf
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
        tmp = self.useFixture(fixtures.TempDir()).path
        self.policies_file = os.path.join(tmp, 'policies.yaml')
        with open(self.policies_file, 'w') as f:
            f.write(POLICIES)
        self.conf = cfg.ConfigOpts()
        kronos_conf.register_opts(self.conf)
        self.conf([])
        self.cfg = self.useFixture(cfg_fixture.Config(self.conf))
        self.cfg.config(policies_file=self.policies_file, group='kronos')
        # Nova's rules are checked in the functional tests (real Nova).
        self.cfg.config(feasibility='none', group='kronos_rebalance')
        # host1 carries six servers of 0.1 each, host2 none: worth moving.
        self.fleet, self.snapshot = fakes.build(
            {'host1': ['s%d' % i for i in range(6)], 'host2': []})
        self.read_fleet = self.useFixture(fixtures.MockPatchObject(
            inventory, 'read_fleet', return_value=self.fleet)).mock
        self.execute = self.useFixture(fixtures.MockPatchObject(
            executor, 'execute', side_effect=self._succeed)).mock

    @staticmethod
    def _succeed(conn, moves, **kw):
        return [executor.MoveResult(m, executor.SUCCEEDED, m.destination)
                for m in moves]

    def run_once(self, source=None, **request):
        req = rebalance.Request.from_conf(self.conf, **request)
        return rebalance.run(self.conf, req, conn=NoConn(),
                             metric_source=source or SnapshotSource(
                                 self.snapshot))


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
            mock.ANY, outcome.plan.moves, timeout=77, poll_interval=0.5)
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
        self.assertFalse(outcome.executed)
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


class TestPeriodic(RebalanceTestCase):

    def test_a_failed_cycle_does_not_end_the_loop(self):
        source = SnapshotSource(metrics.MetricsError('down'), self.snapshot)
        stop = threading.Event()
        reports = []

        def report(outcome, error):
            reports.append((outcome, error))
            if len(reports) == 2:
                stop.set()

        req = rebalance.Request.from_conf(self.conf)
        last = rebalance.run_periodic(self.conf, req, 0.01, stop, report,
                                      conn=NoConn(), metric_source=source)
        self.assertEqual(2, len(reports))
        self.assertIsNone(reports[0][0])
        self.assertIsInstance(reports[0][1], rebalance.Unavailable)
        self.assertIsNone(reports[1][1])
        self.assertIs(reports[1][0], last)
        self.assertTrue(last.plan.moves)


class TestCommandExitCodes(RebalanceTestCase):

    def main(self, *args):
        path = os.path.join(os.path.dirname(self.policies_file), 'nova.conf')
        with open(path, 'w') as f:
            f.write('[kronos]\npolicies_file = %s\n' % self.policies_file)
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', path, 'kronos', 'rebalance']
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
