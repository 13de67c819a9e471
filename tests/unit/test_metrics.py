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
import os
import shutil
import socket
import ssl
import tempfile
from unittest import mock
from urllib import parse

import fixtures
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
import requests
from requests import adapters
import testtools

from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos.metrics import file as file_source
from nova_kronos.metrics import prometheus
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


class FakeHTTP(fixtures.Fixture):
    """Answers the requests of ``requests``' HTTPAdapter from a table.

    No socket and no server thread: a thread blocked in a real ``select``
    would stall every green thread once another test module has had Nova
    monkey-patch the process with eventlet.

    ``answers`` maps a URL path to ``(status, body)`` (a ``str``, or an
    object sent as JSON); other paths get Prometheus' plain "404 page not
    found". ``error``, when set, is raised instead of answering. Each
    request is kept in ``requests`` as ``(path, query, headers, timeout,
    verify)``.
    """

    def _setUp(self):
        self.answers = {}
        self.requests = []
        self.error = None
        self.useFixture(fixtures.MockPatchObject(
            adapters.HTTPAdapter, 'send', autospec=True,
            side_effect=self._send))

    def _send(self, adapter, request, stream=False, timeout=None,
              verify=True, cert=None, proxies=None):
        url = parse.urlsplit(request.url)
        self.requests.append((url.path, parse.parse_qs(url.query),
                              dict(request.headers), timeout, verify))
        if self.error is not None:
            raise self.error
        status, body = self.answers.get(url.path,
                                        (404, '404 page not found'))
        response = requests.Response()
        response.status_code = status
        response._content = (body if isinstance(body, str)
                             else json.dumps(body)).encode('utf-8')
        response.encoding = 'utf-8'
        response.url = request.url
        response.request = request
        return response


def _closed_port_url():
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return 'http://127.0.0.1:%d' % sock.getsockname()[1]


def _vector(*samples):
    return {'status': 'success', 'data': {'resultType': 'vector', 'result': [
        {'metric': labels, 'value': [1700000000.0, value]}
        for labels, value in samples]}}


URL = 'http://prometheus.test:9090/prom'


class _PrometheusTestCase(testtools.TestCase):

    def setUp(self):
        super().setUp()
        self.conf = cfg.ConfigOpts()
        kronos_conf.register_opts(self.conf)
        self.conf([])
        self.cfg = self.useFixture(cfg_fixture.Config(self.conf))
        self.cfg.config(url=URL, retries=0, timeout=5,
                        group='kronos_prometheus')

    def source(self, **options):
        self.cfg.config(group='kronos_prometheus', **options)
        return prometheus.PrometheusSource(self.conf)


class _FakeHTTPTestCase(_PrometheusTestCase):

    def setUp(self):
        super().setUp()
        self.http = self.useFixture(FakeHTTP())

    def query_error(self, status, body, promql='up'):
        self.http.answers['/prom/api/v1/query'] = (status, body)
        e = self.assertRaises(metrics.MetricsError, self.source().query,
                              promql)
        msg = str(e)
        self.assertNotIn('\n', msg)
        self.assertTrue(msg.startswith('Prometheus at %s/api/v1/query '
                                       % URL), msg)
        return msg


class TestPrometheusCAFile(_PrometheusTestCase):

    def test_missing_ca_file(self):
        e = self.assertRaises(metrics.MetricsError, self.source,
                              ca_file='/x/y/ca.pem')
        self.assertEqual('[kronos_prometheus] ca_file: CA file /x/y/ca.pem '
                         'does not exist', str(e))

    def test_ca_file_without_certificate(self):
        path = self.useFixture(fixtures.TempDir()).join('ca.pem')
        with open(path, 'w') as f:
            f.write('not a certificate\n')
        e = self.assertRaises(metrics.MetricsError, self.source,
                              ca_file=path)
        self.assertEqual('[kronos_prometheus] ca_file: CA file %s holds no '
                         'PEM certificate (NO_CERTIFICATE_OR_CRL_FOUND)'
                         % path, str(e))

    def test_unreadable_ca_file(self):
        # Root reads any file whatever its mode: have the open fail.
        denied = PermissionError(13, 'Permission denied')
        with mock.patch.object(ssl, 'create_default_context',
                               side_effect=denied):
            e = self.assertRaises(metrics.MetricsError, self.source,
                                  ca_file='/etc/ssl/ca.pem')
        self.assertEqual('[kronos_prometheus] ca_file: cannot read CA file '
                         '/etc/ssl/ca.pem: Permission denied', str(e))

    def test_usable_ca_file_and_directory(self):
        self.source(ca_file=requests.certs.where())
        self.source(ca_file=os.path.dirname(requests.certs.where()))

    def test_insecure_ignores_ca_file(self):
        self.source(ca_file='/x/y/ca.pem', insecure=True)

    def test_ca_file_removed_after_start(self):
        # requests looks for the CA file at each HTTPS request, before
        # connecting, and fails with a bare OSError. The CA file must win
        # over the environment's bundle.
        self.useFixture(fixtures.EnvironmentVariable(
            'REQUESTS_CA_BUNDLE', requests.certs.where()))
        path = self.useFixture(fixtures.TempDir()).join('ca.pem')
        shutil.copy(requests.certs.where(), path)
        url = _closed_port_url().replace('http:', 'https:')
        source = self.source(url=url, ca_file=path)
        os.unlink(path)
        e = self.assertRaises(metrics.MetricsError, source.query, 'up')
        self.assertEqual('Prometheus at %s/api/v1/query cannot be reached: '
                         'Could not find a suitable TLS CA certificate '
                         'bundle, invalid path: %s' % (url, path), str(e))


class TestPrometheusQuery(_FakeHTTPTestCase):

    def test_vector(self):
        self.http.answers['/prom/api/v1/query'] = (200, _vector(
            ({'nodename': 'h1'}, '0.25'), ({'nodename': 'h2'}, '1')))
        self.assertEqual([({'nodename': 'h1'}, 0.25),
                          ({'nodename': 'h2'}, 1.0)],
                         self.source().query('up'))
        self.assertEqual({'query': ['up']}, self.http.requests[0][1])

    def test_success_without_data(self):
        msg = self.query_error(200, {'status': 'success'})
        self.assertIn("answered the query 'up' without a data.result list",
                      msg)

    def test_data_without_result(self):
        for data in ({}, {'resultType': 'vector'}, [], 'x', None,
                     {'result': {'a': 1}}):
            msg = self.query_error(200, {'status': 'success', 'data': data})
            self.assertIn('without a data.result list', msg)

    def test_not_a_json_object(self):
        for body in ('<html>Sign in</html>', '', '[' * 100000):
            msg = self.query_error(200, body)
            self.assertIn('answered HTTP 200 without a JSON object', msg)
        # JSON, but not the API's envelope.
        for body in ('[1, 2]', '"ok"', 'null'):
            msg = self.query_error(200, body)
            self.assertIn('without a data.result list', msg)

    def test_status_error(self):
        msg = self.query_error(400, {
            'status': 'error', 'errorType': 'bad_data',
            'error': 'invalid parameter "query": 1:4: parse error'})
        self.assertTrue(msg.endswith(
            "answered the query 'up' with HTTP 400, bad_data: invalid "
            'parameter "query": 1:4: parse error'), msg)

    def test_http_error_without_json(self):
        msg = self.query_error(502, '<html>\n<b>Bad Gateway</b>\n</html>')
        self.assertTrue(msg.endswith(
            "answered the query 'up' with HTTP 502: <html> <b>Bad "
            'Gateway</b> </html>'), msg)

    def test_long_body_is_cut(self):
        msg = self.query_error(503, 'x' * 100000)
        self.assertTrue(msg.endswith('with HTTP 503: %s... (100000 '
                                     'characters)' % ('x' * 200)), msg)
        msg = self.query_error(400, {'status': 'error', 'errorType': 'e',
                                     'error': 'y' * 5000})
        self.assertTrue(msg.endswith('HTTP 400, e: %s... (5000 characters)'
                                     % ('y' * 200)), msg)
        msg = self.query_error(200, '<html>%s</html>' % ('z' * 5000))
        # '<html>' is 6 characters, then 5000 z and '</html>': 5013.
        self.assertTrue(msg.endswith(
            'without a JSON object: <html>%s... (5013 characters)'
            % ('z' * 194)), msg)

    def test_long_query_is_cut(self):
        promql = 'up' + ' or up' * 1000   # 2 + 6 * 1000 characters
        msg = self.query_error(400, 'bad', promql=promql)
        # repr adds two quotes: 6004 characters.
        self.assertIn("query %s... (6004 characters)"
                      % repr(promql)[:200], msg)

    def test_non_vector_results(self):
        for data in ({'resultType': 'scalar', 'result': [1, '1']},
                     {'resultType': 'matrix', 'result': [
                         {'metric': {}, 'values': [[1, '1']]}]},
                     {'result': [{'metric': {}, 'value': [1, 'x']}]},
                     {'result': [{'metric': ['a'], 'value': [1, '1']}]},
                     {'result': ['sample']}):
            msg = self.query_error(200, {'status': 'success', 'data': data})
            self.assertIn("answered 'up' with a non-vector result", msg)

    def test_timeout(self):
        self.http.error = requests.ReadTimeout(
            "HTTPConnectionPool(host='prometheus.test', port=9090): Read "
            "timed out. (read timeout=0.2)")
        e = self.assertRaises(metrics.MetricsError,
                              self.source(timeout=0.2).query, 'up')
        self.assertEqual(
            "Prometheus at %s/api/v1/query cannot be reached: "
            "HTTPConnectionPool(host='prometheus.test', port=9090): Read "
            "timed out. (read timeout=0.2)" % URL, str(e))
        self.assertEqual(0.2, self.http.requests[0][3])

    def test_authentication_and_tls_options_are_sent(self):
        self.http.answers['/prom/api/v1/query'] = (200, _vector())
        self.source(bearer_token='s3cret').query('up')
        self.assertEqual('Bearer s3cret',
                         self.http.requests[-1][2]['Authorization'])
        self.source(bearer_token=None, username='kronos',
                    password='pw').query('up')
        # base64("kronos:pw")
        self.assertEqual('Basic a3Jvbm9zOnB3',
                         self.http.requests[-1][2]['Authorization'])
        self.source(ca_file=requests.certs.where()).query('up')
        self.assertEqual(requests.certs.where(), self.http.requests[-1][4])
        self.source(insecure=True).query('up')
        self.assertIs(False, self.http.requests[-1][4])


class TestPrometheusUnreachable(_PrometheusTestCase):
    """Real sockets: a loopback port nothing listens on."""

    def test_query(self):
        url = _closed_port_url()
        e = self.assertRaises(metrics.MetricsError,
                              self.source(url=url).query,
                              'rate(x[5m])' * 100)
        msg = str(e)
        self.assertTrue(msg.startswith('Prometheus at %s/api/v1/query '
                                       'cannot be reached: ' % url), msg)
        # The text after the errno differs once eventlet patched socket.
        self.assertIn('Failed to establish a new connection: [Errno 111]',
                      msg)
        # urllib3's retry wrapper, which repeats the URL and query, is gone.
        self.assertNotIn('Max retries', msg)
        self.assertLess(len(msg), 300)

    def test_check_syntax(self):
        url = _closed_port_url()
        e = self.assertRaises(metrics.MetricsError,
                              self.source(url=url).check_syntax, 'up')
        self.assertTrue(str(e).startswith(
            'Prometheus at %s/api/v1/format_query cannot be reached: '
            % url), str(e))


class TestPrometheusCheckSyntax(_FakeHTTPTestCase):

    BAD_DATA = {'status': 'error', 'errorType': 'bad_data',
                'error': 'invalid parameter "query": 1:13: parse error: '
                         'unclosed left parenthesis'}

    def test_parses(self):
        self.http.answers['/prom/api/v1/format_query'] = (
            200, {'status': 'success', 'data': 'up'})
        self.assertIsNone(self.source().check_syntax('up'))
        self.assertEqual([('/prom/api/v1/format_query', {'query': ['up']})],
                         [r[:2] for r in self.http.requests])

    def test_parse_error(self):
        self.http.answers['/prom/api/v1/format_query'] = (400, self.BAD_DATA)
        self.assertEqual('1:13: parse error: unclosed left parenthesis',
                         self.source().check_syntax('rate(foo[5m]'))

    def test_parse_error_on_one_line_and_cut(self):
        self.http.answers['/prom/api/v1/format_query'] = (400, {
            'status': 'error', 'errorType': 'bad_data',
            'error': '1:1: first\n1:5: second ' + 'z' * 500})
        problem = self.source().check_syntax('x')
        # 23 characters before the z's: "1:1: first 1:5: second ".
        self.assertEqual('1:1: first 1:5: second %s... (523 characters)'
                         % ('z' * 177), problem)

    def test_falls_back_to_an_instant_query(self):
        # Prometheus before 2.38 has no format_query: 404.
        self.http.answers['/prom/api/v1/query'] = (400, self.BAD_DATA)
        self.assertEqual('1:13: parse error: unclosed left parenthesis',
                         self.source().check_syntax('rate(foo[5m]'))
        self.assertEqual(['/prom/api/v1/format_query', '/prom/api/v1/query'],
                         [r[0] for r in self.http.requests])
        self.http.answers['/prom/api/v1/query'] = (200, _vector())
        self.assertIsNone(self.source().check_syntax('up'))
        # An evaluation error comes after parsing.
        self.http.answers['/prom/api/v1/query'] = (422, {
            'status': 'error', 'errorType': 'execution',
            'error': 'many-to-many matching not allowed'})
        self.assertIsNone(self.source().check_syntax('a * b'))

    def test_no_verdict(self):
        self.http.answers['/prom/api/v1/format_query'] = (503, {
            'status': 'error', 'errorType': 'unavailable', 'error': 'busy'})
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up')
        self.assertEqual("Prometheus at %s/api/v1/format_query gave no "
                         "verdict on the syntax of 'up': HTTP 503, "
                         "unavailable: busy" % URL, str(e))
        # No Prometheus behind that path at all: 404 on both endpoints.
        self.http.answers.clear()
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up')
        self.assertEqual("Prometheus at %s/api/v1/query gave no verdict on "
                         "the syntax of 'up': HTTP 404: 404 page not found"
                         % URL, str(e))

    def test_not_json(self):
        self.http.answers['/prom/api/v1/format_query'] = (200, '<html/>')
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up')
        self.assertEqual('Prometheus at %s/api/v1/format_query answered HTTP '
                         '200 without a JSON object: <html/>' % URL, str(e))

    def test_same_session_as_queries(self):
        self.http.answers['/prom/api/v1/format_query'] = (
            200, {'status': 'success', 'data': 'up'})
        self.source(bearer_token='s3cret', timeout=0.7,
                    ca_file=requests.certs.where()).check_syntax('up')
        _, _, headers, timeout, verify = self.http.requests[-1]
        self.assertEqual('Bearer s3cret', headers['Authorization'])
        self.assertEqual(0.7, timeout)
        self.assertEqual(requests.certs.where(), verify)
        self.http.error = requests.ConnectionError('refused')
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up')
        self.assertEqual('Prometheus at %s/api/v1/format_query cannot be '
                         'reached: refused' % URL, str(e))
