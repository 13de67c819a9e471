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


import calendar

import testtools

from nova_kronos import history

# 2026-11-27T07:00:00Z
NOW = calendar.timegm((2026, 11, 27, 7, 0, 0))
HOUR = 3600.0


def rec(id, server='s1', status='completed', age=60.0, source='h1',
        destination='h2', created_age=None):
    """A record last updated ``age`` seconds before NOW."""
    created = NOW - (age if created_age is None else created_age)
    return history.MigrationRecord(
        id=id, server_id=server, source=source, destination=destination,
        status=status, created_at=created, updated_at=NOW - age)


def remember(records, settle_times=None, **options):
    return history.remember(records, NOW, history.MemoryOptions(**options),
                            settle_times or {})


class TestStatusClasses(testtools.TestCase):

    def test_live_migration_statuses(self):
        for status in ('accepted', 'queued', 'preparing', 'running',
                       'post-migrating', 'cancelling'):
            self.assertEqual('in progress', history.status_class(status))
        self.assertEqual('completed', history.status_class('completed'))
        self.assertEqual('failed', history.status_class('failed'))
        self.assertEqual('failed', history.status_class('error'))
        self.assertEqual('cancelled', history.status_class('cancelled'))

    def test_other_statuses_are_not_classed(self):
        # Resize / cold-migration statuses, and garbage.
        for status in ('confirmed', 'finished', 'reverted', 'done',
                       'migrating', 'pre-migrating', None, 'RUNNING'):
            self.assertIsNone(history.status_class(status))

    def test_classes_are_disjoint(self):
        classes = (history.IN_PROGRESS, history.COMPLETED, history.FAILED,
                   history.CANCELLED)
        for i, a in enumerate(classes):
            for b in classes[i + 1:]:
                self.assertEqual(set(), a & b)

    def test_unrecognised_records_are_listed_and_ignored(self):
        mem = remember([rec(9, status='finished')])
        self.assertEqual([(9, 'finished')], mem.unrecognised)
        self.assertEqual({}, mem.cooldown)
        self.assertEqual({}, mem.frozen)
        self.assertTrue(mem.is_empty)


class TestCooldown(testtools.TestCase):

    OPTS = {'cooldown': 3600.0, 'cooldown_max': 10000.0, 'window': 86400.0}

    def _until(self, n):
        # n completed migrations, the latest 100 s ago, the others 1000 s
        # apart before it.
        records = [rec(i, age=100.0 + 1000.0 * i) for i in range(n)]
        return remember(records, **self.OPTS).cooldown['s1'][0]

    def test_backoff_doubles_and_is_capped_from_the_latest(self):
        # 3600 * 2**(n-1), capped at 10000, counted from NOW - 100.
        self.assertEqual(NOW - 100 + 3600, self._until(1))
        self.assertEqual(NOW - 100 + 7200, self._until(2))
        self.assertEqual(NOW - 100 + 10000, self._until(3))   # 14400 capped
        self.assertEqual(NOW - 100 + 10000, self._until(4))   # 28800 capped

    def test_migration_older_than_the_window_does_not_count(self):
        records = [rec(1, age=100.0), rec(2, age=86400.0 + 1)]
        until, _ = remember(records, **self.OPTS).cooldown['s1']
        self.assertEqual(NOW - 100 + 3600, until)

    def test_migration_at_the_window_edge_counts(self):
        records = [rec(1, age=100.0), rec(2, age=86400.0)]
        until, _ = remember(records, **self.OPTS).cooldown['s1']
        self.assertEqual(NOW - 100 + 7200, until)

    def test_expired_cooldown_is_absent(self):
        # One migration 3601 s ago: its 3600 s are over.
        self.assertEqual({}, remember([rec(1, age=3601.0)]).cooldown)
        # Two, the latest 7200 s ago: 7200 s are over exactly at NOW.
        mem = remember([rec(1, age=7200.0), rec(2, age=8000.0)])
        self.assertEqual({}, mem.cooldown)

    def test_reason(self):
        # Completed at 05:00 and 06:00 UTC; 2 * 3600 s from 06:00.
        mem = remember([rec(1, age=2 * HOUR), rec(2, age=HOUR)])
        self.assertEqual(
            (NOW + HOUR,
             'live-migrated 2 times in the last 24 h, last at '
             '2026-11-27T06:00:00Z; cooldown until 2026-11-27T08:00:00Z'),
            mem.cooldown['s1'])

    def test_zero_disables(self):
        self.assertEqual({}, remember([rec(1)], cooldown=0).cooldown)

    def test_only_completed_migrations_count(self):
        records = [rec(1, status='failed'), rec(2, status='cancelled'),
                   rec(3, status='error')]
        self.assertEqual({}, remember(records).cooldown)

    def test_record_dated_after_now_counts_as_now(self):
        # Nova's clock 30 s ahead of ours.
        until, _ = remember([rec(1, age=-30.0)]).cooldown['s1']
        self.assertEqual(NOW + 30 + 3600, until)

    def test_servers_are_counted_apart(self):
        mem = remember([rec(1, server='s1'), rec(2, server='s2', age=200.0),
                        rec(3, server='s2', age=300.0)])
        self.assertEqual(NOW - 60 + 3600, mem.cooldown['s1'][0])
        self.assertEqual(NOW - 200 + 7200, mem.cooldown['s2'][0])


class TestInProgress(testtools.TestCase):

    def test_frozen_and_in_flight(self):
        mem = remember([rec(7, status='running', age=10.0, created_age=HOUR,
                            destination='h3')])
        self.assertEqual(
            {'s1': 'live migration 7 in progress (status running) from h1 '
                   'to h3 since 2026-11-27T06:00:00Z'}, mem.frozen)
        self.assertEqual([('s1', 'h1', 'h3')], mem.in_flight)
        self.assertEqual({}, mem.cooldown)
        self.assertEqual({}, mem.settling)

    def test_every_in_progress_status_freezes(self):
        statuses = sorted(history.IN_PROGRESS)
        mem = remember([rec(i, server='s%d' % i, status=s)
                        for i, s in enumerate(statuses)])
        self.assertEqual(len(statuses), len(mem.frozen))
        self.assertEqual(len(statuses), len(mem.in_flight))

    def test_unknown_destination_freezes_without_in_flight(self):
        mem = remember([rec(1, status='accepted', destination=None)])
        self.assertIn('to a host the scheduler picks', mem.frozen['s1'])
        self.assertEqual([], mem.in_flight)

    def test_newest_in_progress_record_wins(self):
        mem = remember([
            rec(1, status='running', destination='h2', created_age=500.0),
            rec(2, status='queued', destination='h3', created_age=100.0)])
        self.assertEqual([('s1', 'h1', 'h3')], mem.in_flight)
        self.assertIn('migration 2 ', mem.frozen['s1'])

    def test_old_completed_and_running_again(self):
        mem = remember([rec(1, age=600.0),
                        rec(2, status='preparing', source='h2',
                            destination='h4')])
        self.assertIn('s1', mem.frozen)
        self.assertIn('s1', mem.cooldown)
        self.assertEqual([('s1', 'h2', 'h4')], mem.in_flight)


class TestQuarantine(testtools.TestCase):

    def test_failed_pair(self):
        mem = remember([rec(3, status='failed', age=600.0)])
        self.assertEqual(
            {('s1', 'h2'): (
                NOW - 600 + 3600,
                'live migration 3 to h2 failed (status failed) at '
                '2026-11-27T06:50:00Z; not planned there before '
                '2026-11-27T07:50:00Z')},
            mem.quarantine)

    def test_error_without_destination_quarantines_the_server(self):
        mem = remember([rec(4, status='error', destination=None, age=60.0)])
        self.assertEqual([('s1', None)], list(mem.quarantine))
        until, reason = mem.quarantine[('s1', None)]
        self.assertEqual(NOW - 60 + 3600, until)
        self.assertIn('no destination recorded', reason)

    def test_failure_older_than_quarantine_is_absent(self):
        mem = remember([rec(3, status='failed', age=3601.0)])
        self.assertEqual({}, mem.quarantine)
        # Exactly 3600 s ago: over at NOW.
        mem = remember([rec(3, status='failed', age=3600.0)])
        self.assertEqual({}, mem.quarantine)
        mem = remember([rec(3, status='failed', age=3601.0)],
                       quarantine=7200.0)
        self.assertEqual(NOW - 3601 + 7200,
                         mem.quarantine[('s1', 'h2')][0])

    def test_zero_disables(self):
        mem = remember([rec(3, status='error')], quarantine=0)
        self.assertEqual({}, mem.quarantine)

    def test_cancelled_neither_moves_nor_quarantines(self):
        mem = remember([rec(3, status='cancelled')], {'cpu': 600.0})
        self.assertTrue(mem.is_empty)
        self.assertEqual({}, mem.settling)

    def test_latest_failure_sets_the_end(self):
        mem = remember([rec(1, status='failed', age=900.0),
                        rec(2, status='error', age=300.0)])
        self.assertEqual(NOW - 300 + 3600, mem.quarantine[('s1', 'h2')][0])

    def test_add_quarantine_keeps_the_longer(self):
        mem = remember([rec(1, status='failed', age=300.0)])
        mem.add_quarantine('s1', 'h2', NOW + 60, 'shorter')
        self.assertEqual(NOW - 300 + 3600, mem.quarantine[('s1', 'h2')][0])
        mem.add_quarantine('s1', 'h2', NOW + 7200, 'refused in this run')
        self.assertEqual((NOW + 7200, 'refused in this run'),
                         mem.quarantine[('s1', 'h2')])
        mem.add_quarantine('s9', None, NOW + 60, 'x')
        self.assertIn(('s9', None), mem.quarantine)


class TestSettling(testtools.TestCase):

    def test_per_policy_settle_time(self):
        # 200 s old: the 150 s policy reflects it, the 400 s one does not.
        mem = remember([rec(1, age=200.0)], {'fast': 150.0, 'slow': 400.0})
        self.assertEqual({'slow': [('s1', 'h1', 'h2')]}, mem.settling)

    def test_unknown_or_zero_settle_time(self):
        mem = remember([rec(1, age=0.0)], {'cpu': 0.0})
        self.assertEqual({}, mem.settling)

    def test_same_host_or_no_destination_does_not_settle(self):
        mem = remember([rec(1, destination='h1'),
                        rec(2, server='s2', destination=None)],
                       {'cpu': 600.0})
        self.assertEqual({}, mem.settling)

    def test_failed_and_in_progress_do_not_settle(self):
        mem = remember([rec(1, status='failed'),
                        rec(2, server='s2', status='running')],
                       {'cpu': 600.0})
        self.assertEqual({}, mem.settling)


class TestMemory(testtools.TestCase):

    def test_empty(self):
        mem = remember([])
        self.assertTrue(mem.is_empty)
        self.assertEqual({'frozen': 0, 'in_flight': 0, 'cooldown': 0,
                          'quarantine': 0, 'settling': 0,
                          'unrecognised': 0}, mem.summary())

    def test_summary_counts(self):
        mem = remember([
            rec(1, server='a', age=100.0),                  # cooldown, both
            rec(2, server='b', status='running'),           # frozen, flight
            rec(3, server='c', status='accepted', destination=None),
            rec(4, server='d', status='error', destination=None),
            rec(5, server='d', status='failed', destination='h3'),
            rec(6, server='e', status='done'),
        ], {'cpu': 300.0, 'mem': 300.0})
        self.assertFalse(mem.is_empty)
        self.assertEqual({'frozen': 2, 'in_flight': 1, 'cooldown': 1,
                          'quarantine': 2, 'settling': 1,
                          'unrecognised': 1}, mem.summary())

    def test_negative_option_is_refused(self):
        self.assertRaises(ValueError, history.MemoryOptions, cooldown=-1)
        self.assertRaises(ValueError, history.MemoryOptions, window=-1)
