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


"""Drain and pack end to end: real Nova (in-process) and a real Prometheus.

(a) ``kronos drain --host host1`` on a disabled host: the dry run plans
    every server off it (largest first, groups kept, GiB accounted for)
    and moves nothing; ``--execute`` empties it;
(b) drained hosts never receive, even when they are the coldest;
(c) a server no host accepts is reported as unmovable, stays where it is,
    and the others still leave;
(d) a server that fits only once another one moved: the dry run plans the
    move making room and lists the server as waiting; ``--execute`` moves
    it in a second round, once Placement shows the room;
(e) ``kronos rebalance --drain-disabled`` drains a disabled host that
    still holds servers and balances otherwise;
(f) ``kronos rebalance --planner pack`` empties whole hosts (never half a
    host) under the thresholds, which the loads measured afterwards
    confirm.

Every expectation below is worked out by hand from the layout published;
hosts have 10 cores and 8 GiB both for Nova and for the synthetic
exporters, so a server's share is the same on every host.
"""

from tests.functional import base  # noqa: I100  isort:skip

import json
import os

import fixtures
import yaml

from nova_kronos.cmd import manage

GIB = base.GIB
CORES = 10
SMALL = '2'  # m1.small: 1 vCPU, 2048 MiB, 20 GB root disk
MEDIUM = '3'  # m1.medium: 2 vCPU, 4096 MiB, 40 GB root disk


class DrainPackTestCase(base.KronosFunctionalTestCase):
    """Helpers reading everything back from Nova's API."""

    def disable(self, host, reason='maintenance'):
        """``openstack compute service set --disable``, as operators do."""
        svc = next(self.conn.compute.services(binary='nova-compute',
                                              host=host))
        self.conn.compute.disable_service(svc, host, 'nova-compute',
                                          disabled_reason=reason)
        svc = next(self.conn.compute.services(binary='nova-compute',
                                              host=host))
        self.assertEqual('disabled', svc.status)
        self.assertEqual('up', svc.state)

    def drain(self, *args):
        """``kronos drain --format json ARGS``: (code, doc, stderr)."""
        code, out, err = self.manage('kronos', 'drain', '--format', 'json',
                                     *args)
        return code, (json.loads(out) if out.strip() else None), err

    def servers_on(self, host):
        """IDs of the servers Nova shows on ``host``."""
        return sorted(
            s['id'] for s in self.admin_api.get_servers(
                search_opts={'all_tenants': 1})
            if s['OS-EXT-SRV-ATTR:host'] == host)

    def migrated(self):
        """{server id: [migration status]} of Nova's migration records."""
        out = {}
        for m in self.admin_api.get_migrations():
            out.setdefault(m['instance_uuid'], []).append(m['status'])
        return out

    def copied_gib(self, server_id, shared_storage=False):
        """GiB a live migration of the server copies, from Nova's flavor.

        Its RAM; plus its root disk when it was booted from an image and
        the storage is not shared (a block migration).
        """
        server = self.admin_api.get_server(server_id)
        flavor = server['flavor']
        gib = flavor['ram'] / 1024.0
        if not shared_storage and server['image'] and flavor['disk']:
            gib += flavor['disk']
        return gib

    def assert_anti_affinity(self, group_id):
        """No two members of the group on one host, as Nova shows them."""
        members = self.admin_api.get_server_group(group_id)['members']
        where = self.hosts_of(members)
        self.assertEqual(len(members), len(set(where.values())),
                         'anti-affinity broken: %s' % where)

    def layout_now(self, workload, hosts=None):
        """{host: [(id, busy, rss)]} with each server where Nova shows it.

        :param workload: {server id: (busy cores, rss bytes)}.
        """
        layout = {h: [] for h in hosts or self.compute_hosts}
        for sid, host in self.hosts_of(list(workload)).items():
            layout[host].append((sid,) + tuple(workload[sid]))
        return layout

    @staticmethod
    def moves_by_server(doc):
        return {m['server_id']: m for m in doc['moves']}


class TestDrain(DrainPackTestCase):

    def test_dry_run_then_execute_empties_the_host(self):
        anti = self.create_server_group('anti', 'anti-affinity')
        big = self.boot_servers('host1', 1, flavor_id=SMALL,
                                name_prefix='big')[0]['id']
        small = [s['id'] for s in self.boot_servers('host1', 2,
                                                    name_prefix='small')]
        a1 = self.boot_servers('host1', 1, group_id=anti['id'],
                               name_prefix='a1')[0]['id']
        a2 = self.boot_servers('host2', 1, group_id=anti['id'],
                               name_prefix='a2')[0]['id']
        o3 = [s['id'] for s in self.boot_servers('host3', 2,
                                                 name_prefix='o3')]
        o4 = self.boot_servers('host4', 1, name_prefix='o4')[0]['id']
        drained = [big] + small + [a1]
        # host1's servers: 1 busy core each (share 0.1); big holds 1.5 GiB
        # (0.1875), the others 0.5 GiB. host2 (a1's sibling) is by far the
        # coldest: cpu 0.1, memory 0.125. host3: 0.7 / 0.625; host4:
        # 0.6 / 0.5625. Each of big, small-1, small-2 (largest first) goes
        # to host2, which stays the coldest (0.4 / 0.4375 after); a1 would
        # too but may not: it goes to the next coldest, host4 (0.7 / 0.625
        # after, under the 0.85 / 0.9 thresholds).
        layout = {
            'host1': [(big, 1.0, 3 * GIB // 2)] + [
                (s, 1.0, GIB // 2) for s in small + [a1]],
            'host2': [(a2, 0.5, GIB // 2)],
            'host3': [(s, 0.5, GIB // 2) for s in o3],
            'host4': [(o4, 0.5, GIB // 2)],
        }
        self.publish(layout,
                     overhead={'host2': 0.5, 'host3': 6.0, 'host4': 5.5},
                     mem_overhead={'host2': GIB // 2, 'host3': 4 * GIB,
                                   'host4': 4 * GIB})
        self.disable('host1')
        everyone = drained + [a2] + o3 + [o4]
        before = self.hosts_of(everyone)

        code, doc, err = self.drain('--host', 'host1')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual('dry-run', doc['mode'])
        self.assertEqual('drain', doc['planner'])
        self.assertEqual([], doc['unmovable'])
        self.assertEqual([], doc['waiting'])
        self.assertEqual(['host1'], doc['aggregates'][0]['freed_hosts'])
        planned = {m['server_id']: m['destination'] for m in doc['moves']}
        self.assertEqual({big: 'host2', small[0]: 'host2',
                          small[1]: 'host2', a1: 'host4'}, planned)
        self.assertEqual(big, doc['moves'][0]['server_id'],
                         'the largest server is not planned first')
        for m in doc['moves']:
            self.assertEqual('host1', m['source'])
        # The plan keeps the group: a1 not onto a2's host.
        after = dict(before, **planned)
        self.assertNotEqual(after[a1], after[a2])

        # GiB copied, from the flavors Nova reports: servers booted from
        # an image, storage not shared: RAM plus root disk, block
        # migrations.
        rate = doc['settings']['migration_rate']
        for sid, m in self.moves_by_server(doc).items():
            self.assertAlmostEqual(self.copied_gib(sid), m['gib'])
            self.assertTrue(m['block_migration'])
            self.assertAlmostEqual(m['gib'] * 1024.0 / rate,
                                   m['estimated_seconds'], delta=0.051)
        total = sum(self.copied_gib(s) for s in drained)
        self.assertAlmostEqual(total, doc['migrated_gib'])
        self.assertAlmostEqual(total * 1024.0 / rate,
                               doc['estimated_seconds'], delta=0.051)

        # Shared storage: RAM only.
        self.write_conf(shared_storage=True)
        code, shared, err = self.drain('--host', 'host1')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        ram = sum(self.copied_gib(s, shared_storage=True) for s in drained)
        self.assertAlmostEqual(ram, shared['migrated_gib'])
        self.assertEqual((2048 + 3 * 512) / 1024.0, ram)
        self.assertFalse(any(m['block_migration'] for m in shared['moves']))
        self.write_conf()

        # Nothing moved.
        self.assertEqual(before, self.hosts_of(everyone))
        self.assertEqual({}, self.migrated())

        code, doc, err = self.drain('--host', 'host1', '--execute')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual('execute', doc['mode'])
        self.assertEqual(planned, {m['server_id']: m['destination']
                                   for m in doc['moves']})
        self.assertEqual(len(doc['moves']), len(doc['results']))
        for r in doc['results']:
            self.assertEqual('succeeded', r['status'], r)
            self.assertEqual(r['destination'], self.host_of(r['server_id']))
        self.assertEqual([], self.servers_on('host1'))
        self.assertEqual(dict(before, **planned), self.hosts_of(everyone))
        self.assert_anti_affinity(anti['id'])
        self.assertEqual({s: ['completed'] for s in drained},
                         self.migrated())

    def test_drained_hosts_never_receive(self):
        # host1 and host2 are drained together (still enabled) and are the
        # coldest hosts: each would be the best destination for the
        # other's servers. Every server must go to host3 or host4.
        servers = {h: [s['id'] for s in self.boot_servers(h, 2)]
                   for h in self.compute_hosts}
        layout = {h: [(s, 0.3, GIB // 4) for s in ids]
                  for h, ids in servers.items()}
        self.publish(layout, overhead={'host3': 3.0, 'host4': 3.0},
                     mem_overhead={'host3': 2 * GIB, 'host4': 2 * GIB})
        code, doc, err = self.drain('--host', 'host1', '--host', 'host2')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual([], doc['unmovable'])
        self.assertEqual(['host1', 'host2'],
                         sorted(doc['aggregates'][0]['freed_hosts']))
        self.assertEqual(sorted(servers['host1'] + servers['host2']),
                         sorted(m['server_id'] for m in doc['moves']))
        for m in doc['moves']:
            self.assertIn(m['destination'], ('host3', 'host4'), m)
        self.assertEqual({}, self.migrated())

    def test_unmovable_server_is_reported_and_others_move(self):
        anti = self.create_server_group('anti', 'anti-affinity')
        # u1 (on host1) has a sibling on every other host: no host may
        # take it. It is the largest server of host1, so it is tried
        # first: the drain must go on without it.
        u1 = self.boot_servers('host1', 1, flavor_id=SMALL,
                               group_id=anti['id'],
                               name_prefix='u1')[0]['id']
        siblings = [self.boot_servers(h, 1, group_id=anti['id'],
                                      name_prefix='u-%s' % h)[0]['id']
                    for h in ('host2', 'host3', 'host4')]
        plain = [s['id'] for s in self.boot_servers('host1', 2,
                                                    name_prefix='plain')]
        layout = {'host1': [(u1, 0.5, GIB)]
                  + [(p, 0.5, GIB // 2) for p in plain]}
        for h, sid in zip(('host2', 'host3', 'host4'), siblings):
            layout[h] = [(sid, 0.5, GIB // 2)]
        self.publish(layout, overhead={'host2': 1.0, 'host3': 2.0,
                                       'host4': 3.0})
        self.disable('host1')

        code, doc, err = self.drain('--host', 'host1', '--execute')
        self.assertEqual(manage.EXIT_MOVE_FAILED, code, err)
        self.assertEqual([u1], [u['server_id'] for u in doc['unmovable']])
        self.assertIn('server-group', doc['unmovable'][0]['reason'])
        self.assertEqual([], doc['aggregates'][0]['freed_hosts'])
        self.assertEqual(sorted(plain),
                         sorted(m['server_id'] for m in doc['moves']))
        for r in doc['results']:
            self.assertEqual('succeeded', r['status'], r)
            self.assertEqual(r['destination'], self.host_of(r['server_id']))
        # u1 never left, was never submitted, and is fine.
        server = self.admin_api.get_server(u1)
        self.assertEqual('host1', server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual('ACTIVE', server['status'])
        self.assertEqual([u1], self.servers_on('host1'))
        self.assertNotIn(u1, self.migrated())
        self.assert_anti_affinity(anti['id'])

    def test_room_is_made_then_the_server_follows(self):
        # Placement gives every host 8192 - 512 = 7680 MiB. host1's x
        # (4096 MiB) fits nowhere: host2 holds two m1.small, host3 and
        # host4 one m1.medium each (3584 MiB free everywhere). Only
        # host2 can make room: one of its m1.small goes to host3 or host4
        # (room for 2048 MiB there), then x fits on host2. Placement
        # counts that room only once the first migration is over: x is
        # planned in the next round.
        x = self.boot_servers('host1', 1, flavor_id=MEDIUM,
                              name_prefix='x')[0]['id']
        on2 = [s['id'] for s in self.boot_servers('host2', 2,
                                                  flavor_id=SMALL,
                                                  name_prefix='y')]
        m3 = self.boot_servers('host3', 1, flavor_id=MEDIUM,
                               name_prefix='m3')[0]['id']
        m4 = self.boot_servers('host4', 1, flavor_id=MEDIUM,
                               name_prefix='m4')[0]['id']
        self.publish({'host1': [(x, 1.0, GIB)],
                      'host2': [(s, 1.0, GIB) for s in on2],
                      'host3': [(m3, 1.0, GIB)],
                      'host4': [(m4, 1.0, GIB)]})
        self.disable('host1')

        code, doc, err = self.drain('--host', 'host1')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual([], doc['unmovable'])
        self.assertEqual(1, len(doc['moves']), doc['moves'])
        room = doc['moves'][0]
        self.assertIn(room['server_id'], on2)
        self.assertEqual('host2', room['source'])
        self.assertIn(room['destination'], ('host3', 'host4'))
        self.assertIn('makes room on host2', room['reason'])
        self.assertEqual([x], [w['server_id'] for w in doc['waiting']])
        self.assertIn(room['server_id'], doc['waiting'][0]['reason'])
        self.assertEqual({}, self.migrated())

        code, doc, err = self.drain('--host', 'host1', '--execute')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual(2, doc['rounds'])
        self.assertEqual([room['server_id'], x],
                         [m['server_id'] for m in doc['moves']])
        for r in doc['results']:
            self.assertEqual('succeeded', r['status'], r)
        self.assertEqual([], doc['unmovable'])
        self.assertEqual([], self.servers_on('host1'))
        self.assertEqual('host2', self.host_of(x))
        self.assertEqual(room['destination'],
                         self.host_of(room['server_id']))


class TestDrainDisabled(DrainPackTestCase):

    def test_disabled_host_is_drained_before_balancing(self):
        hot = [s['id'] for s in self.boot_servers('host1', 4,
                                                  name_prefix='hot')]
        on2 = [s['id'] for s in self.boot_servers('host2', 3,
                                                  name_prefix='on2')]
        o3 = self.boot_servers('host3', 1, name_prefix='o3')[0]['id']
        o4 = self.boot_servers('host4', 1, name_prefix='o4')[0]['id']
        # host1 is hot (cpu 0.6, memory 0.5): spread would move off it.
        self.publish({
            'host1': [(s, 1.5, GIB) for s in hot],
            'host2': [(s, 0.5, GIB // 2) for s in on2],
            'host3': [(o3, 0.5, GIB // 2)],
            'host4': [(o4, 0.5, GIB // 2)],
        })
        self.disable('host2')

        code, doc, err = self.rebalance('--drain-disabled')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual('drain', doc['planner'])
        self.assertEqual(sorted(on2),
                         sorted(m['server_id'] for m in doc['moves']))
        for m in doc['moves']:
            self.assertEqual('host2', m['source'])
            self.assertNotEqual('host2', m['destination'])
        self.assertEqual(['host2'], doc['aggregates'][0]['freed_hosts'])

        # Without the flag, the same cloud is balanced, and the disabled
        # host receives nothing.
        code, doc, err = self.rebalance()
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual('spread', doc['planner'])
        self.assertIn('host1', {m['source'] for m in doc['moves']})
        for m in doc['moves']:
            self.assertNotEqual('host2', m['destination'])

        # The drain is bounded by --max-migrations; what is left is said.
        code, doc, err = self.rebalance('--drain-disabled',
                                        '--max-migrations', '2')
        self.assertEqual('drain', doc['planner'])
        self.assertEqual(2, len(doc['moves']))
        self.assertEqual([], doc['aggregates'][0]['freed_hosts'])
        self.assertEqual([], doc['unmovable'])
        left = [u['server_id'] for u in doc['deferred']]
        self.assertEqual(1, len(left))
        self.assertIn(left[0], on2)
        self.assertIn('budget', doc['deferred'][0]['reason'])
        # The server left for the next run is no error: work found.
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual({}, self.migrated())

        code, doc, err = self.rebalance('--drain-disabled', '--execute')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual('drain', doc['planner'])
        for r in doc['results']:
            self.assertEqual('succeeded', r['status'], r)
        self.assertEqual([], self.servers_on('host2'))
        self.assertEqual(sorted(hot), self.servers_on('host1'))

        # host2 is empty: the next run balances.
        code, doc, err = self.rebalance('--drain-disabled')
        self.assertEqual('spread', doc['planner'], err)
        for m in doc['moves']:
            self.assertNotEqual('host2', m['destination'])


class TestPack(DrainPackTestCase):

    THRESHOLD = 0.8

    def use_pack_policies(self):
        """The sample policies, both in pack mode with a 0.8 threshold."""
        with open(base.SAMPLE_POLICIES) as f:
            data = yaml.safe_load(f)
        for p in data['policies'].values():
            p['mode'] = 'pack'
            p['threshold'] = self.THRESHOLD
        workdir = self.useFixture(fixtures.TempDir()).path
        self.policies_path = os.path.join(workdir, 'pack.yaml')
        with open(self.policies_path, 'w') as f:
            yaml.safe_dump(data, f)
        self.write_conf()

    def test_pack_empties_whole_hosts_under_thresholds(self):
        self.use_pack_policies()
        ids = {h: [s['id'] for s in self.boot_servers(h, n)]
               for h, n in (('host1', 4), ('host2', 4), ('host3', 1),
                            ('host4', 2))}
        # Each host: 0.5 busy cores and 0.5 GiB outside any server.
        # host1: 4 x (1.0 core, 1 GiB)     -> cpu 0.45, memory 0.5625
        # host2: 4 x (0.8 core, 0.25 GiB)  -> cpu 0.37, memory 0.1875
        # host3: 1 x (0.5 core, 0.5 GiB)   -> cpu 0.10, memory 0.125
        # host4: 2 x (0.5 core, 0.5 GiB)   -> cpu 0.15, memory 0.1875
        # Least loaded first: host3, host4, host2, host1. host3's and
        # host4's three servers go to the fullest host, host1 (cpu 0.60,
        # memory 0.75 after). Then host2 could only go to host1 (host3 and
        # host4 were emptied), where one of its servers fits (memory
        # 0.78125) but not two (0.8125 > 0.8): host2 is not touched.
        size = {'host1': (1.0, GIB), 'host2': (0.8, GIB // 4),
                'host3': (0.5, GIB // 2), 'host4': (0.5, GIB // 2)}
        workload = {sid: size[h] for h, sids in ids.items() for sid in sids}
        overhead = {h: 0.5 for h in self.compute_hosts}
        mem_overhead = {h: GIB // 2 for h in self.compute_hosts}
        self.publish(self.layout_now(workload), overhead=overhead,
                     mem_overhead=mem_overhead)
        expected_moves = {sid: 'host1' for sid in ids['host3'] + ids['host4']}

        code, doc, err = self.rebalance('--planner', 'pack',
                                        '--max-migrations', '10')
        self.assertEqual(manage.EXIT_WORK_FOUND, code, err)
        self.assertEqual('pack', doc['planner'])
        self.assertEqual(expected_moves, {m['server_id']: m['destination']
                                          for m in doc['moves']})
        self.assertEqual({}, self.migrated())

        code, doc, err = self.rebalance('--planner', 'pack', '--execute',
                                        '--max-migrations', '10')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertEqual('pack', doc['planner'])
        agg = doc['aggregates'][0]
        freed = agg['freed_hosts']
        self.assertEqual(['host3', 'host4'], sorted(freed))
        self.assertEqual(expected_moves, {m['server_id']: m['destination']
                                          for m in doc['moves']})
        for r in doc['results']:
            self.assertEqual('succeeded', r['status'], r)
        # Nova: the freed hosts are empty, and no source was half-emptied.
        for host in freed:
            self.assertEqual([], self.servers_on(host))
        for host in {m['source'] for m in doc['moves']}:
            self.assertEqual([], self.servers_on(host),
                             '%s was left half-emptied' % host)
        self.assertEqual(sorted(ids['host2']), self.servers_on('host2'))
        # Predicted: every destination within the thresholds.
        for m in doc['moves']:
            for policy in ('cpu', 'memory'):
                self.assertLessEqual(
                    agg['loads_after'][policy][m['destination']],
                    self.THRESHOLD)
        self.assertAlmostEqual(0.60, agg['loads_after']['cpu']['host1'])
        self.assertAlmostEqual(0.75, agg['loads_after']['memory']['host1'])

        # Measured: the same workloads, served where Nova now runs them.
        self.publish(self.layout_now(workload), overhead=overhead,
                     mem_overhead=mem_overhead)
        measured, _ = self.measured_loads()
        for policy in ('cpu', 'memory'):
            for host, load in measured[policy].items():
                self.assertLessEqual(load, self.THRESHOLD + 1e-9,
                                     '%s %s' % (policy, host))
                self.assertAlmostEqual(agg['loads_after'][policy][host],
                                       load, places=6)
        for host in freed:
            self.assertAlmostEqual(0.5 / CORES, measured['cpu'][host])
            self.assertAlmostEqual(
                (GIB // 2) / float(self.metric_host_mem),
                measured['memory'][host])
