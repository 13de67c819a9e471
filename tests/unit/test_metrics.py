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


import json
import tempfile

import testtools

from nova_kronos import metrics
from nova_kronos.metrics import file as file_source
from tests.unit import fakes


def answers(cpu_hosts, mem_hosts=None, vms=None):
    vms = vms or []
    return {
        'cpu_host': [({'nodename': h}, v) for h, v in cpu_hosts],
        'mem_host': [({'nodename': h}, v)
                     for h, v in (mem_hosts or cpu_hosts)],
        'cpu_vm': [({'instance_id': u}, v) for u, v in vms],
        'mem_vm': [({'instance_id': u}, v) for u, v in vms],
    }


class TestCollect(testtools.TestCase):

    def test_one_query_per_policy_and_kind(self):
        src = fakes.ListSource(answers([('h1', 0.5)], vms=[('u1', 0.1)]))
        snap = src.collect(fakes.policy_set())
        self.assertEqual(['cpu_host', 'cpu_vm', 'mem_host', 'mem_vm'],
                         src.calls)
        self.assertEqual({'h1': 0.5}, snap.data['cpu'].hosts)
        self.assertEqual({'u1': 0.1}, snap.data['mem'].vms)
        src.calls.clear()
        src.collect(fakes.policy_set(), vms=False)
        self.assertEqual(['cpu_host', 'mem_host'], src.calls)

    def test_missing_host_is_excluded_individually(self):
        src = fakes.ListSource(answers([('h1', 0.5), ('h2', 0.1)],
                                       mem_hosts=[('h1', 0.2)]))
        snap = src.collect(fakes.policy_set(), hosts=['h1', 'h2', 'h3'])
        self.assertEqual({'h1': 0.5, 'h2': 0.1}, snap.data['cpu'].hosts)
        self.assertEqual({'h1': 0.2}, snap.data['mem'].hosts)
        missing = {(e.policy, e.name) for e in snap.exclusions}
        self.assertEqual({('cpu', 'h3'), ('mem', 'h2'), ('mem', 'h3')},
                         missing)

    def test_out_of_range_is_an_error_naming_the_host(self):
        src = fakes.ListSource(answers([('h1', 1.7), ('h2', 0.3)]))
        snap = src.collect(fakes.policy_set())
        self.assertEqual({'h2': 0.3}, snap.data['cpu'].hosts)
        errors = [e for e in snap.exclusions if e.error]
        self.assertEqual({'h1'}, {e.name for e in errors})
        self.assertIn('1.7', errors[0].reason)

    def test_float_noise_is_clipped(self):
        src = fakes.ListSource(answers([('h1', 1.0 + 1e-12),
                                        ('h2', -1e-12)]))
        snap = src.collect(fakes.policy_set())
        self.assertEqual({'h1': 1.0, 'h2': 0.0}, snap.data['cpu'].hosts)

    def test_duplicate_host_samples(self):
        src = fakes.ListSource(answers([('h1', 0.1), ('h1', 0.2)]))
        snap = src.collect(fakes.policy_set())
        self.assertNotIn('h1', snap.data['cpu'].hosts)
        self.assertTrue(any(e.error and e.name == 'h1'
                            for e in snap.exclusions))

    def test_label_mapping_to_no_nova_host_is_reported(self):
        src = fakes.ListSource(answers([('h1:9100', 0.4),
                                        ('node-7.example:9100', 0.2)]))
        snap = src.collect(fakes.policy_set(), hosts=['h1'],
                           known_hosts=['h1', 'h2'])
        self.assertEqual({'h1': 0.4}, snap.data['cpu'].hosts)
        bad = [e for e in snap.exclusions if e.error]
        self.assertEqual({'node-7.example:9100'}, {e.name for e in bad})
        self.assertIn('host_mapping', bad[0].reason)

    def test_host_mapping_strips_port(self):
        src = fakes.ListSource(answers([('h1:9100', 0.4)]))
        snap = src.collect(fakes.policy_set())
        self.assertEqual({'h1': 0.4}, snap.data['cpu'].hosts)

    def test_source_error_propagates(self):
        src = fakes.ListSource(metrics.MetricsError('down'))
        self.assertRaises(metrics.MetricsError, src.collect,
                          fakes.policy_set())


class TestFileSource(testtools.TestCase):

    def test_round_trip(self):
        with tempfile.NamedTemporaryFile('w', suffix='.json') as f:
            file_source.write(f.name, {'q': [({'nodename': 'h1'}, 0.25)]})
            src = file_source.FileSource(path=f.name)
            self.assertEqual([({'nodename': 'h1'}, 0.25)], src.query('q'))
            self.assertRaises(metrics.MetricsError, src.query, 'other')

    def test_bad_file(self):
        with tempfile.NamedTemporaryFile('w', suffix='.json') as f:
            json.dump({'nope': 1}, f)
            f.flush()
            e = self.assertRaises(metrics.MetricsError,
                                  file_source.FileSource(path=f.name).query,
                                  'q')
            self.assertIn(f.name, str(e))
