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


"""nova-kronos-manage argument handling and exit codes (no cloud)."""

import io
import os

import fixtures
import testtools

from nova_kronos.cmd import manage

SAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                      'nova-kronos', 'policies.yaml.sample')


def _sample():
    with open(SAMPLE) as f:
        return f.read()


class TestManage(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.dir = self.useFixture(fixtures.TempDir()).path

    def conf(self, policies_text):
        pol = os.path.join(self.dir, 'policies.yaml')
        with open(pol, 'w') as f:
            f.write(policies_text)
        path = os.path.join(self.dir, 'nova.conf')
        with open(path, 'w') as f:
            f.write('[kronos]\npolicies_file = %s\n' % pol)
        return path, pol

    def main(self, *argv, conn=None):
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(list(argv), conn=conn, out=out, err=err)
        return code, out.getvalue(), err.getvalue()

    def test_bad_policies_exit_2_before_touching_nova(self):
        path, pol = self.conf('policies:\n  cpu:\n    mode: sideways\n')
        conn = object()  # any attribute access would raise
        code, out, err = self.main('--config-file', path, 'kronos',
                                   'rebalance', conn=conn)
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn(pol, err)
        self.assertIn('"mode"', err)

    def test_validate_policies(self):
        path, pol = self.conf(_sample())
        code, out, err = self.main('--config-file', path, 'kronos',
                                   'validate-policies', '--offline')
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertIn('cpu: spread, weight 0.6', out)

    def test_validate_policies_has_prometheus_parse_each_query(self):
        path, pol = self.conf(_sample())

        class Parser:
            url = 'http://prom.example:9090'
            asked = []

            def check_syntax(self, promql):
                self.asked.append(promql)
                if 'node_uname_info' in promql:
                    return 'parse error: unexpected <by>'
                return None
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', path, 'kronos',
                            'validate-policies'], out=out, err=err,
                           metric_source=Parser())
        # Two queries per policy of the sample (cpu, memory).
        self.assertEqual(4, len(Parser.asked))
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('ERROR: %s: policy \'cpu\': field "host_query": '
                      'Prometheus cannot parse it: parse error: unexpected '
                      '<by>' % pol, err.getvalue())

    def test_validate_policies_prometheus_down_is_exit_3(self):
        path, pol = self.conf(_sample())

        class Down:
            def check_syntax(self, promql):
                from nova_kronos import metrics
                raise metrics.MetricsError('connection refused')
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', path, 'kronos',
                            'validate-policies'], out=out, err=err,
                           metric_source=Down())
        self.assertEqual(manage.EXIT_UNAVAILABLE, code)
        self.assertIn('--offline', err.getvalue())

    def test_missing_config_file(self):
        code, out, err = self.main('--config-file', '/nonexistent.conf',
                                   'kronos', 'validate-policies')
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('nonexistent.conf', err)

    def test_negative_budget(self):
        path, _ = self.conf(_sample())
        code, out, err = self.main('--config-file', path, 'kronos',
                                   'rebalance', '--max-migrations', '-1',
                                   conn=object())
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('--max-migrations', err)

    def test_every_policies_error_line_is_marked(self):
        path, pol = self.conf('policies:\n  cpu:\n    mode: sideways\n'
                              '    weight: 2\n')
        code, out, err = self.main('--config-file', path, 'kronos',
                                   'validate-policies')
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        lines = err.splitlines()
        self.assertGreater(len(lines), 1, err)
        for line in lines:
            self.assertTrue(line.startswith('ERROR: %s' % pol), line)
