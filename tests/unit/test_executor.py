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


"""Executor paths the functional tests cannot reach (timeouts, races)."""

import types

import testtools

from nova_kronos.cloud import executor
from nova_kronos import planner


def move(sid='s1', src='h1', dst='h2'):
    return planner.Move(server_id=sid, server_name=sid, source=src,
                        destination=dst, aggregate='a', reason='r',
                        imbalance_before=0.2, imbalance_after=0.1)


class FakeCompute:
    """Server stays migrating for ``busy_polls`` polls, then lands."""

    def __init__(self, host='h1', busy_polls=0, land_on='h2',
                 refuse=None):
        self.host = host
        self.busy = busy_polls
        self.land_on = land_on
        self.refuse = refuse
        self.migrating = False
        self.aborted = []

    def get_server(self, sid):
        if self.migrating:
            if self.busy > 0:
                self.busy -= 1
            else:
                self.migrating = False
                self.host = self.land_on
        return types.SimpleNamespace(
            id=sid, compute_host=self.host, status='ACTIVE',
            task_state='migrating' if self.migrating else None)

    def live_migrate_server(self, server, host, block_migration):
        assert block_migration == 'auto'
        if self.refuse:
            raise self.refuse
        self.migrating = True

    def server_migrations(self, sid):
        return [types.SimpleNamespace(id=7)] if self.migrating else []

    def abort_server_migration(self, mig, sid):
        self.aborted.append((mig.id, sid))
        self.migrating = False

    def migrations(self, **query):
        return [types.SimpleNamespace(id=3, status='error')]


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def run(compute, moves, timeout=10):
    clock = Clock()
    conn = types.SimpleNamespace(compute=compute)
    return executor.execute(conn, moves, timeout=timeout, poll_interval=1,
                            clock=clock, sleep=clock.sleep)


class TestExecutor(testtools.TestCase):

    def test_success(self):
        r = run(FakeCompute(busy_polls=2), [move()])
        self.assertEqual(executor.SUCCEEDED, r[0].status)
        self.assertEqual('h2', r[0].host)
        self.assertEqual(3.0, r[0].seconds)

    def test_timeout_aborts_and_skips_the_rest(self):
        compute = FakeCompute(busy_polls=100)
        r = run(compute, [move(), move('s2')], timeout=5)
        self.assertEqual(executor.TIMED_OUT, r[0].status)
        self.assertIn('aborted', r[0].detail)
        self.assertEqual([(7, 's1')], compute.aborted)
        self.assertEqual(executor.SKIPPED, r[1].status)

    def test_landing_elsewhere_is_a_failure(self):
        r = run(FakeCompute(land_on='h1'), [move()])
        self.assertEqual(executor.FAILED, r[0].status)
        self.assertIn('status error', r[0].detail)
        self.assertIn('stays on h1', r[0].detail)

    def test_refused_by_nova(self):
        r = run(FakeCompute(refuse=RuntimeError('No valid host')), [move()])
        self.assertEqual(executor.FAILED, r[0].status)
        self.assertIn('No valid host', r[0].detail)
        self.assertEqual('h1', r[0].host)

    def test_server_no_longer_on_source_is_skipped(self):
        compute = FakeCompute(host='h3')
        r = run(compute, [move()])
        self.assertEqual(executor.SKIPPED, r[0].status)
        self.assertFalse(compute.migrating)
