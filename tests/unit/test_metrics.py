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
import threading
import time
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
from tests.harness import faulty_http
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

    ``answers`` maps a URL path to ``(status, body)`` (a ``str``, sent as
    ``text/plain``, or ``text/html`` when it starts with ``<``, or an
    object sent as JSON), or ``(status, body, content type)``; other paths
    get Prometheus' plain "404 page not found". ``error``, when set, is
    raised instead of answering. Each request is kept in ``requests`` as
    ``(path, query, headers, timeout, verify)``.
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
        answer = self.answers.get(url.path, (404, '404 page not found'))
        status, body = answer[:2]
        if len(answer) > 2:
            kind = answer[2]
        elif not isinstance(body, str):
            kind = 'application/json'
        elif body.startswith('<'):
            kind = 'text/html'
        else:
            kind = 'text/plain; charset=utf-8'
        response = requests.Response()
        response.status_code = status
        response.headers['Content-Type'] = kind
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

    def query_error(self, status, body, content_type=None, promql='up'):
        self.http.answers['/prom/api/v1/query'] = (
            (status, body) if content_type is None
            else (status, body, content_type))
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
            self.assertIn('answered HTTP 200 without a JSON object (', msg)
            # Not quoted: a proxy's page may echo the request's headers.
            self.assertTrue(msg.endswith(
                '%d bytes, not quoted)' % len(body)), msg)
            self.assertNotIn('Sign in', msg)
            self.assertNotIn('[[', msg)
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
            "answered the query 'up' with HTTP 502 (text/html, 33 bytes, "
            'not quoted)'), msg)
        # JSON, but not Prometheus' error envelope: not quoted either.
        msg = self.query_error(500, {'message': 'boom'})
        self.assertTrue(msg.endswith(
            "with HTTP 500 (application/json, 19 bytes, not quoted)"), msg)
        # A long content type is cut.
        msg = self.query_error(500, 'x', 'text/' + 'y' * 500)
        self.assertIn('(text/%s... (505 characters), 1 bytes, not quoted)'
                      % ('y' * 55), msg)

    def test_long_body_is_cut(self):
        msg = self.query_error(503, 'x' * 100000)
        self.assertTrue(msg.endswith(
            'with HTTP 503 (text/plain; charset=utf-8, 100000 bytes, not '
            'quoted)'), msg)
        msg = self.query_error(400, {'status': 'error', 'errorType': 'e',
                                     'error': 'y' * 5000})
        self.assertTrue(msg.endswith('HTTP 400, e: %s... (5000 characters)'
                                     % ('y' * 200)), msg)
        msg = self.query_error(200, '<html>%s</html>' % ('z' * 5000))
        # '<html>' is 6 characters, then 5000 z and '</html>': 5013.
        self.assertTrue(msg.endswith(
            'without a JSON object (text/html, 5013 bytes, not quoted)'),
            msg)

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
            "Prometheus at %s/api/v1/query did not answer within 0.2 s "
            "([kronos_prometheus] timeout); query 'up'" % URL, str(e))
        # The time left of the query's 0.2 s, not a fresh 0.2 s per read.
        self.assertGreater(self.http.requests[0][3], 0.1)
        self.assertLessEqual(self.http.requests[0][3], 0.2)

    def test_deadline_passed(self):
        e = self.assertRaises(metrics.MetricsError, self.source().query,
                              'up', deadline=time.monotonic() - 1)
        self.assertEqual(
            "Prometheus at %s/api/v1/query did not answer within 0 s "
            "(the caller's deadline); query 'up'" % URL, str(e))
        self.assertEqual([], self.http.requests)
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up',
                              deadline=time.monotonic())
        self.assertIn('did not answer within 0 s', str(e))
        self.assertEqual([], self.http.requests)

    def test_deadline_shortens_the_timeout(self):
        self.http.answers['/prom/api/v1/query'] = (200, _vector())
        self.source(timeout=5).query('up', deadline=time.monotonic() + 0.5)
        self.assertGreater(self.http.requests[0][3], 0.3)
        self.assertLessEqual(self.http.requests[0][3], 0.5)
        # A far deadline leaves the timeout.
        self.source(timeout=0.3).query('up', deadline=time.monotonic() + 60)
        self.assertGreater(self.http.requests[1][3], 0.2)
        self.assertLessEqual(self.http.requests[1][3], 0.3)

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
                         "the syntax of 'up': HTTP 404 (text/plain; "
                         "charset=utf-8, 18 bytes, not quoted)" % URL, str(e))

    def test_not_json(self):
        self.http.answers['/prom/api/v1/format_query'] = (200, '<html/>')
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up')
        self.assertEqual('Prometheus at %s/api/v1/format_query answered HTTP '
                         '200 without a JSON object (text/html, 7 bytes, not '
                         'quoted)' % URL, str(e))

    def test_same_session_as_queries(self):
        self.http.answers['/prom/api/v1/format_query'] = (
            200, {'status': 'success', 'data': 'up'})
        self.source(bearer_token='s3cret', timeout=0.7,
                    ca_file=requests.certs.where()).check_syntax('up')
        _, _, headers, timeout, verify = self.http.requests[-1]
        self.assertEqual('Bearer s3cret', headers['Authorization'])
        # What is left of 0.7 s for the whole check.
        self.assertGreater(timeout, 0.6)
        self.assertLessEqual(timeout, 0.7)
        self.assertEqual(requests.certs.where(), verify)
        self.http.error = requests.ConnectionError('refused')
        e = self.assertRaises(metrics.MetricsError,
                              self.source().check_syntax, 'up')
        self.assertEqual('Prometheus at %s/api/v1/format_query cannot be '
                         'reached: refused' % URL, str(e))


class TestPrometheusDeadline(_PrometheusTestCase):
    """Real sockets against misbehaving servers (tests.harness.faulty_http).

    The servers close a connection after ``LIFETIME`` seconds, so a client
    that does not bound its wait fails these tests instead of hanging.
    """

    LIFETIME = 8
    #: Past a deadline, what a call may add (the brief's 0.2 s, less a
    #: margin for a loaded test machine on the low side).
    SLACK = 0.25

    def server(self, kind, **kwargs):
        return self.useFixture(faulty_http.FaultyHTTPServer(
            kind, lifetime=self.LIFETIME, **kwargs))

    def assertTakes(self, seconds, call, *args, **kwargs):
        """``call`` raises MetricsError after ``seconds`` (+ SLACK)."""
        start = time.monotonic()
        e = self.assertRaises(metrics.MetricsError, call, *args, **kwargs)
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, seconds - 0.05, str(e))
        self.assertLess(elapsed, seconds + self.SLACK, str(e))
        self.assertNotIn('\n', str(e))
        return str(e)

    def test_collect_ends_by_its_deadline(self):
        # Two policies, four queries, each allowed 5 s by the timeout: the
        # deadline, 1 s away, still ends collect.
        url = self.server('trickle').url
        source = self.source(url=url, timeout=5, retries=2)
        msg = self.assertTakes(1.0, source.collect, fakes.policy_set(),
                               deadline=time.monotonic() + 1)
        self.assertEqual(
            "Prometheus at %s/api/v1/query did not answer within 1 s (the "
            "caller's deadline); query 'cpu_host'" % url, msg)

    def test_deadline_counts_across_queries(self):
        # The time left after a first query is all the second one gets.
        url = self.server('trickle').url
        source = self.source(url=url, timeout=0.6, retries=0)
        deadline = time.monotonic() + 0.9
        self.assertTakes(0.6, source.query, 'up', deadline=deadline)
        msg = self.assertTakes(0.3, source.query, 'up', deadline=deadline)
        self.assertRegex(msg, r"did not answer within 0\.[23]\d* s \(the "
                              r"caller's deadline\); query 'up'$")

    def test_timeout_bounds_the_whole_query(self):
        # One byte every 0.2 s: each read is quick, the query is not.
        # Retries and their pauses draw on the same 0.6 s.
        for kind in ('trickle', 'trickle-headers', 'silent'):
            url = self.server(kind).url
            source = self.source(url=url, timeout=0.6, retries=3)
            msg = self.assertTakes(0.6, source.query, 'up')
            self.assertEqual(
                "Prometheus at %s/api/v1/query did not answer within 0.6 s "
                "([kronos_prometheus] timeout); query 'up'" % url, msg)

    def test_each_read_waits_only_the_time_left(self):
        # A byte every 0.5 s against a 0.6 s limit: the read started at
        # 0.5 s must give up at 0.6 s, not wait for the byte of 1.0 s.
        url = self.server('trickle', interval=0.5).url
        source = self.source(url=url, timeout=0.6, retries=0)
        self.assertTakes(0.6, source.query, 'up')

    def test_trickled_error_status_is_bounded(self):
        # 502 is retried: urllib3 first drains the trickled body.
        url = self.server('trickle', status=502).url
        source = self.source(url=url, timeout=0.6, retries=3)
        self.assertTakes(0.6, source.query, 'up')

    def test_retry_after_is_not_waited_for(self):
        # 503 with Retry-After: 20: urllib3 would sleep 20 s, then retry.
        # There is no time for it: the 503 is the answer.
        url = self.server('echo-html', status=503,
                          headers={'Retry-After': '20'}).url
        source = self.source(url=url, timeout=1, retries=2)
        start = time.monotonic()
        e = self.assertRaises(metrics.MetricsError, source.query, 'up')
        self.assertLess(time.monotonic() - start, 0.5)
        self.assertRegex(
            str(e), r"^Prometheus at %s/api/v1/query answered the query 'up' "
                    r"with HTTP 503 \(text/html; charset=utf-8, \d+ bytes, "
                    r"not quoted\)$" % url)
        # A pause that fits is made.
        url = self.server('echo-html', status=503,
                          headers={'Retry-After': '1'}).url
        source = self.source(url=url, timeout=1.5, retries=1)
        start = time.monotonic()
        self.assertRaises(metrics.MetricsError, source.query, 'up')
        self.assertGreater(time.monotonic() - start, 1)

    def test_check_syntax_timeout_is_a_total(self):
        url = self.server('trickle').url
        source = self.source(url=url, timeout=0.6, retries=1)
        msg = self.assertTakes(0.6, source.check_syntax, 'up')
        self.assertEqual(
            "Prometheus at %s/api/v1/format_query did not answer within "
            "0.6 s ([kronos_prometheus] timeout); syntax check of 'up'"
            % url, msg)
        self.assertTakes(0.3, source.check_syntax, 'up',
                         deadline=time.monotonic() + 0.3)

    def test_shared_source_keeps_each_callers_deadline(self):
        # One source, one session, four threads (green ones once eventlet
        # patched the process): each call ends by its own deadline.
        source = self.source(url=self.server('trickle').url, timeout=5)
        limits = [0.3, 1.2, 0.6, 0.9]
        took = {}

        def run(seconds):
            start = time.monotonic()
            try:
                source.query('up', deadline=start + seconds)
            except metrics.MetricsError:
                took[seconds] = time.monotonic() - start

        threads = [threading.Thread(target=run, args=(s,)) for s in limits]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(sorted(limits), sorted(took))
        for seconds in limits:
            self.assertGreater(took[seconds], seconds - 0.05)
            self.assertLess(took[seconds], seconds + self.SLACK)

    def test_a_healthy_answer_after_a_timeout(self):
        # The deadline of a finished call does not stick to the session
        # or to its pooled connections.
        self.useFixture(FakeHTTP()).answers['/prom/api/v1/query'] = (
            200, _vector(({'nodename': 'h1'}, '0.5')))
        source = self.source(timeout=0.2)
        self.assertEqual([({'nodename': 'h1'}, 0.5)],
                         source.query('up', deadline=time.monotonic() + 1))
        self.assertIsNone(prometheus._EXCHANGE.get())


class TestDeadlineSignature(testtools.TestCase):

    def test_file_source_accepts_and_ignores_a_deadline(self):
        with tempfile.NamedTemporaryFile('w', suffix='.json') as f:
            file_source.write(f.name, {'cpu_host': [({'nodename': 'h1'},
                                                     0.25)]})
            src = file_source.FileSource(path=f.name)
            self.assertEqual([({'nodename': 'h1'}, 0.25)],
                             src.query('cpu_host',
                                       deadline=time.monotonic() - 1))

    def test_collect_hands_the_deadline_to_every_query(self):
        seen = []

        class Source(metrics.MetricSource):
            def query(self, promql, deadline=None):
                seen.append((promql, deadline))
                return []

        Source().collect(fakes.policy_set(), deadline=123.0)
        self.assertEqual([('cpu_host', 123.0), ('cpu_vm', 123.0),
                          ('mem_host', 123.0), ('mem_vm', 123.0)], seen)
        # A source of the old signature still works without a deadline.
        src = fakes.ListSource(answers([('h1', 0.5)]))
        src.collect(fakes.policy_set())
        self.assertEqual(4, len(src.calls))
