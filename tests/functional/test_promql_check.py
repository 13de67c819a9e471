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

"""PrometheusSource.check_syntax against a real Prometheus, and failures.

The queries of etc/nova-kronos/policies.yaml.sample must parse, broken ones
must come back with Prometheus' own parse error; a missing CA file and an
answer without ``data`` must be MetricsErrors. Like the other modules of
this package, this one relies on ``tests/functional/__init__.py`` having
imported Nova's harness first.
"""

import http.server
import io
import json
import os
import threading

import fixtures
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
import requests
import testtools
import yaml

from nova_kronos.cmd import manage
from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos.metrics import prometheus as prometheus_source
from tests.functional import test_prometheus_queries as queries

SAMPLE_POLICIES = os.path.join(
    os.path.dirname(__file__), '..', '..',
    'etc', 'nova-kronos', 'policies.yaml.sample')


class _SourceTestCase(testtools.TestCase):

    def source(self, url, **options):
        conf = cfg.ConfigOpts()
        kronos_conf.register_opts(conf)
        conf([])
        fixture = self.useFixture(cfg_fixture.Config(conf))
        fixture.config(url=url, retries=0, timeout=10,
                       group='kronos_prometheus', **options)
        return prometheus_source.PrometheusSource(conf)


class TestCheckSyntax(queries._ServerTestCase, _SourceTestCase):
    """One real Prometheus for the class, started by its first test."""

    def test_sample_queries_parse(self):
        with open(SAMPLE_POLICIES) as f:
            policies = yaml.safe_load(f)['policies']
        source = self.source(self.server.url)
        checked = 0
        for name, policy in policies.items():
            for field in ('host_query', 'vm_query'):
                self.assertIsNone(source.check_syntax(policy[field]),
                                  '%s.%s' % (name, field))
                checked += 1
        self.assertEqual(4, checked)  # cpu and memory, two queries each

    def test_parse_errors(self):
        source = self.source(self.server.url)
        # "rate(foo[5m]" is 12 characters: the missing ")" is found at
        # line 1, column 13.
        problem = source.check_syntax('rate(foo[5m]')
        self.assertTrue(problem.startswith('1:13: parse error: '), problem)
        # In "sum by (x) y)" the stray "y" is the 12th character.
        problem = source.check_syntax('sum by (x) y)')
        self.assertTrue(problem.startswith('1:12: parse error: '), problem)
        self.assertNotIn('\n', problem)

    def validate(self, url, policies_text, *args):
        """``nova-kronos-manage kronos validate-policies`` in-process."""
        tmp = self.useFixture(fixtures.TempDir()).path
        pol = os.path.join(tmp, 'policies.yaml')
        with open(pol, 'w') as f:
            f.write(policies_text)
        conf = os.path.join(tmp, 'nova.conf')
        with open(conf, 'w') as f:
            f.write('[kronos]\npolicies_file = %s\n[kronos_prometheus]\n'
                    'url = %s\ntimeout = 10\nretries = 0\n' % (pol, url))
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', conf, 'kronos',
                            'validate-policies'] + list(args),
                           out=out, err=err)
        return code, out.getvalue(), err.getvalue(), pol

    def test_validate_policies_command(self):
        with open(SAMPLE_POLICIES) as f:
            sample = f.read()
        code, out, err, pol = self.validate(self.server.url, sample)
        self.assertEqual(manage.EXIT_OK, code, err)
        self.assertIn('%s: OK (every query parsed by %s)'
                      % (pol, self.server.url), out)
        # A query Prometheus cannot parse names the policy and the field.
        broken = sample.replace('node_uname_info{job="node"}',
                                'node_uname_info{job="node"', 1)
        self.assertNotEqual(sample, broken)
        code, out, err, pol = self.validate(self.server.url, broken)
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('ERROR: %s: policy \'cpu\': field "host_query": '
                      'Prometheus cannot parse it: ' % pol, err)
        # --offline checks the file only: no Prometheus needed.
        dead = 'http://127.0.0.1:9'
        code, out, err, pol = self.validate(dead, sample, '--offline')
        self.assertEqual(manage.EXIT_OK, code, err)
        code, out, err, pol = self.validate(dead, sample)
        self.assertEqual(manage.EXIT_UNAVAILABLE, code)
        self.assertIn('use --offline', err)

    def test_instant_query_reports_parse_errors_as_bad_data(self):
        # check_syntax falls back on this when format_query is missing.
        for promql in ('rate(foo[5m]', 'sum by (x) y)'):
            answer = requests.get(self.server.url + '/api/v1/query',
                                  params={'query': promql}, timeout=10)
            self.assertEqual(400, answer.status_code)
            self.assertEqual('bad_data', answer.json()['errorType'])


class _Answer(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ``{"status": "success"}`` and no data."""

    def do_GET(self):
        body = json.dumps({'status': 'success'}).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TestFailures(_SourceTestCase):

    def test_missing_ca_file(self):
        e = self.assertRaises(metrics.MetricsError, self.source,
                              'https://127.0.0.1:9090',
                              ca_file='/nonexistent/kronos-ca.pem')
        self.assertIn('/nonexistent/kronos-ca.pem does not exist', str(e))

    def test_answer_without_data(self):
        server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Answer)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                  daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(thread.join, 10)
        self.addCleanup(server.shutdown)
        url = 'http://127.0.0.1:%d' % server.server_address[1]
        e = self.assertRaises(metrics.MetricsError,
                              self.source(url).query, 'up')
        self.assertIn('Prometheus at %s/api/v1/query' % url, str(e))
        self.assertIn('without a data.result list', str(e))
