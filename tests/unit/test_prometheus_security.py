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

"""No password or token in any message of the Prometheus source.

Refused options (credentials in the URL, username with bearer_token), the
redaction of what a server echoes back (real loopback servers of
tests.harness.faulty_http that answer with the request's headers), the
tracebacks and log records around them, and nova-kronos-manage's start-up
check.
"""

import base64
import io
import logging
import traceback
import types

import fixtures
import requests

from nova_kronos.cmd import manage
from nova_kronos import metrics
from nova_kronos.metrics import prometheus
from tests.harness import faulty_http
from tests.unit import test_metrics

USER = 'kronos'
PASSWORD = 'Pw7fk-Q9zXr'
TOKEN = 'tk-Zr82LmQ0aa55'
BASIC = base64.b64encode(('%s:%s' % (USER, PASSWORD)).encode()).decode()
SECRETS = (PASSWORD, TOKEN, BASIC)

BASIC_AUTH = {'username': USER, 'password': PASSWORD}
BEARER_AUTH = {'bearer_token': TOKEN}


class _SecretsTestCase(test_metrics._PrometheusTestCase):

    def setUp(self):
        super().setUp()
        self.log = self.useFixture(fixtures.FakeLogger(level=logging.DEBUG))

    def source(self, **options):
        """A source with only the credentials given (none by default)."""
        return super().source(**dict(
            {'username': None, 'password': None, 'bearer_token': None},
            **options))

    def assertNoSecret(self, text):
        for secret in SECRETS:
            self.assertNotIn(secret, text)
        # Nor a recognisable piece of one (a cut in the middle).
        for secret in SECRETS:
            self.assertNotIn(secret[:6], text)

    def assertCleanError(self, error):
        """One line, no secret, in the message, traceback and logs."""
        msg = str(error)
        self.assertNotIn('\n', msg)
        self.assertNoSecret(msg)
        self.assertNoSecret(''.join(traceback.format_exception(error)))
        self.assertNoSecret(self.log.output)
        return msg


class TestRefusedOptions(_SecretsTestCase):

    def test_credentials_in_url(self):
        e = self.assertRaises(
            metrics.MetricsError, self.source,
            url='https://%s:%s@prom.example:9090/prom/' % (USER, PASSWORD))
        self.assertEqual(
            '[kronos_prometheus] url must not carry credentials '
            '(user:password@): set [kronos_prometheus] username and '
            'password, or bearer_token, instead (url without them: '
            'https://prom.example:9090/prom)', self.assertCleanError(e))
        self.assertNotIn(USER + ':', str(e))

    def test_credentials_in_url_whatever_they_hold(self):
        # Characters that end the authority for a URL parser (oslo.config
        # refuses some of these URLs already), and the percent-encoded form.
        for password in (PASSWORD + '/x', PASSWORD + '?x', PASSWORD + '#x',
                         PASSWORD + '@x', PASSWORD + '%40x'):
            opts = types.SimpleNamespace(
                url='http://%s:%s@prom.example:9090' % (USER, password),
                username=None, password=None, bearer_token=None)
            problems = prometheus.check_options(opts)
            self.assertEqual(1, len(problems), problems)
            self.assertNoSecret(problems[0])
            self.assertTrue(problems[0].endswith(
                '(url without them: http://prom.example:9090)'), problems)
        for url in ('http://%s:%s%%40x@prom.example' % (USER, PASSWORD),
                    # A token as the user name alone.
                    'https://%s@prom.example' % TOKEN):
            e = self.assertRaises(metrics.MetricsError, self.source, url=url)
            self.assertCleanError(e)

    def test_query_string_in_url(self):
        e = self.assertRaises(
            metrics.MetricsError, self.source,
            url='https://prom.example/prom?token=%s#frag' % TOKEN)
        self.assertEqual(
            '[kronos_prometheus] url must not have a query string or a '
            'fragment: the API path is appended to it (url without them: '
            'https://prom.example/prom)', self.assertCleanError(e))

    def test_username_with_bearer_token(self):
        e = self.assertRaises(metrics.MetricsError, self.source,
                              **dict(BASIC_AUTH, **BEARER_AUTH))
        self.assertEqual(
            '[kronos_prometheus] username and bearer_token are both set: '
            'use either username/password (basic authentication) or '
            'bearer_token, not both', self.assertCleanError(e))

    def test_password_without_username(self):
        e = self.assertRaises(metrics.MetricsError, self.source,
                              password=PASSWORD)
        self.assertEqual(
            '[kronos_prometheus] password is set without username: set '
            'username too, or use bearer_token', self.assertCleanError(e))

    def test_problems_together_on_one_line(self):
        e = self.assertRaises(
            metrics.MetricsError, self.source,
            url='https://%s:%s@prom.example' % (USER, PASSWORD),
            **dict(BASIC_AUTH, **BEARER_AUTH))
        msg = self.assertCleanError(e)
        self.assertEqual(2, len(msg.split('; [kronos_prometheus] ')), msg)
        self.assertIn('; [kronos_prometheus] username and bearer_token', msg)

    def test_through_the_plugin_loader(self):
        # As the weigher and the filter load the source.
        self.cfg.config(group='kronos_prometheus',
                        url='https://%s:%s@prom.example' % (USER, PASSWORD))
        e = self.assertRaises(metrics.MetricsError, metrics.load_source,
                              'prometheus', self.conf)
        self.assertIn('[kronos_prometheus] url must not carry credentials',
                      self.assertCleanError(e))

    def test_usable_options(self):
        for options in ({}, BASIC_AUTH, BEARER_AUTH,
                        {'username': USER}):
            self.cfg.config(group='kronos_prometheus', username=None,
                            password=None, bearer_token=None)
            self.cfg.config(group='kronos_prometheus', **options)
            self.assertEqual(
                [], prometheus.check_options(self.conf.kronos_prometheus))
            self.source()


class TestRedact(_SecretsTestCase):

    def test_credential_headers(self):
        for text, expected in (
                ('GET / HTTP/1.1\r\nAuthorization: Basic %s\r\nHost: h'
                 % BASIC, 'GET / HTTP/1.1\r\nAuthorization: ***\r\nHost: h'),
                ('authorization:Bearer %s' % TOKEN, 'authorization:***'),
                ("{'AUTHORIZATION': 'Bearer %s', 'Host': 'h'}" % TOKEN,
                 "{'AUTHORIZATION': ***"),
                ('Proxy-Authorization = Basic x\nok',
                 'Proxy-Authorization = ***\nok'),
                ('Cookie: session=abc\nHost: h', 'Cookie: ***\nHost: h')):
            self.assertEqual(expected, prometheus.redact(text))

    def test_configured_secrets_anywhere(self):
        secrets = prometheus.secrets_of(self.conf.kronos_prometheus)
        self.assertEqual((), secrets)
        self.cfg.config(group='kronos_prometheus', **BASIC_AUTH)
        secrets = prometheus.secrets_of(self.conf.kronos_prometheus)
        self.assertIn(PASSWORD, secrets)
        self.assertIn(BASIC, secrets)
        self.assertEqual(
            'pw=*** b64=*** done',
            prometheus.redact('pw=%s b64=%s done' % (PASSWORD, BASIC),
                              secrets))
        self.cfg.config(group='kronos_prometheus', username=None,
                        password=None, bearer_token=TOKEN)
        secrets = prometheus.secrets_of(self.conf.kronos_prometheus)
        self.assertEqual((TOKEN,), secrets)
        self.assertEqual('token *** expired',
                         prometheus.redact('token %s expired' % TOKEN,
                                           secrets))

    def test_redacted_before_being_cut(self):
        # A secret across the cut would leave its first characters.
        text = 'x' * 195 + PASSWORD + 'y' * 100
        quoted = prometheus.quote(text, (PASSWORD,))
        self.assertNoSecret(quoted)
        self.assertTrue(quoted.startswith('x' * 195 + '***y'), quoted)


class TestEchoedSecrets(_SecretsTestCase):
    """Real servers that answer with the request's headers."""

    def server(self, kind, **kwargs):
        server = self.useFixture(faulty_http.FaultyHTTPServer(kind,
                                                              **kwargs))
        # The server does echo the credentials: without redaction, the
        # tests below would see them.
        body = requests.get(server.url + '/api/v1/query',
                            auth=(USER, PASSWORD), timeout=5).text
        self.assertIn('Authorization: Basic %s' % BASIC, body)
        body = requests.get(server.url + '/api/v1/query', timeout=5,
                            headers={'Authorization': 'Bearer ' + TOKEN}).text
        self.assertIn('Authorization: Bearer %s' % TOKEN, body)
        return server

    def query_error(self, url, auth, call='query'):
        source = self.source(url=url, retries=0, timeout=5, **auth)
        e = self.assertRaises(metrics.MetricsError, getattr(source, call),
                              'up')
        return self.assertCleanError(e)

    def test_html_page_is_not_quoted(self):
        url = self.server('echo-html').url
        for auth in (BASIC_AUTH, BEARER_AUTH):
            msg = self.query_error(url, auth)
            self.assertRegex(
                msg, r"^Prometheus at %s/api/v1/query answered the query "
                     r"'up' with HTTP 502 \(text/html; charset=utf-8, \d+ "
                     r"bytes, not quoted\)$" % url)
            self.assertNotIn('Authorization', msg)
            msg = self.query_error(url, auth, 'check_syntax')
            self.assertRegex(msg, r"gave no verdict on the syntax of 'up': "
                                  r"HTTP 502 \(text/html; charset=utf-8, "
                                  r"\d+ bytes, not quoted\)$")

    def test_json_error_is_quoted_redacted(self):
        for status in (200, 500):
            url = self.server('echo-json', status=status).url
            for auth in (BASIC_AUTH, BEARER_AUTH):
                msg = self.query_error(url, auth)
                self.assertTrue(msg.startswith(
                    "Prometheus at %s/api/v1/query answered the query 'up' "
                    "with HTTP %d, bad_data: Host: 127.0.0.1:"
                    % (url, status)), msg)
                self.assertTrue(msg.endswith(
                    'Authorization: *** GET /api/v1/query?query=up '
                    'HTTP/1.1'), msg)
                # check_syntax returns Prometheus' verdict: redacted too.
                source = self.source(url=url, retries=0, **auth)
                problem = source.check_syntax('up')
                self.assertIn('Authorization: ***', problem)
                self.assertNoSecret(problem)
        self.assertNoSecret(self.log.output)

    def test_secret_in_the_error_text(self):
        # Not after a header name: the configured secrets themselves.
        http = self.useFixture(test_metrics.FakeHTTP())
        http.answers['/prom/api/v1/query'] = (500, {
            'status': 'error', 'errorType': 'internal',
            'error': 'login of %s with %s (basic %s), or token %s, failed'
                     % (USER, PASSWORD, BASIC, TOKEN)})
        for auth in (BASIC_AUTH, BEARER_AUTH):
            source = self.source(**auth)
            e = self.assertRaises(metrics.MetricsError, source.query, 'up')
            masked = ('login of kronos with *** (basic ***), or token %s, '
                      'failed' % TOKEN if auth is BASIC_AUTH
                      else 'login of kronos with %s (basic %s), or token '
                      '***, failed' % (PASSWORD, BASIC))
            self.assertEqual(
                "Prometheus at %s/api/v1/query answered the query 'up' with "
                "HTTP 500, internal: %s" % (test_metrics.URL, masked), str(e))
            # The client's exception holds the whole body: not chained.
            self.assertIsNone(e.__cause__)
            self.assertTrue(e.__suppress_context__)

    def test_timeouts_and_refusals_quote_no_secret(self):
        for kind in ('trickle', 'silent'):
            url = self.useFixture(faulty_http.FaultyHTTPServer(
                kind, lifetime=8)).url
            for auth in (BASIC_AUTH, BEARER_AUTH):
                source = self.source(url=url, timeout=0.3, retries=1, **auth)
                e = self.assertRaises(metrics.MetricsError, source.query,
                                      'up')
                self.assertIn('did not answer within 0.3 s',
                              self.assertCleanError(e))
        source = self.source(url=test_metrics._closed_port_url(), **auth)
        e = self.assertRaises(metrics.MetricsError, source.query, 'up')
        self.assertIn('cannot be reached', self.assertCleanError(e))


class TestManageRefusesSecretsAtStart(_SecretsTestCase):
    """nova-kronos-manage's start-up option check: exit code 2."""

    def main(self, prometheus_lines):
        path = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(path, 'w') as f:
            f.write('[kronos]\npolicies_file = /nonexistent.yaml\n'
                    '[kronos_prometheus]\n%s\n' % '\n'.join(prometheus_lines))
        out, err = io.StringIO(), io.StringIO()
        code = manage.main(['--config-file', path, 'kronos',
                            'validate-policies'], out=out, err=err)
        self.assertNoSecret(out.getvalue() + err.getvalue())
        self.assertNoSecret(self.log.output)
        return code, err.getvalue()

    def test_credentials_in_url(self):
        code, err = self.main(['url = https://%s:%s@prom.example:9090'
                               % (USER, PASSWORD)])
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertEqual(
            'ERROR: [kronos_prometheus] url must not carry credentials '
            '(user:password@): set [kronos_prometheus] username and '
            'password, or bearer_token, instead (url without them: '
            'https://prom.example:9090)\n', err)

    def test_username_with_bearer_token(self):
        code, err = self.main(['url = http://prom.example:9090',
                               'username = %s' % USER,
                               'password = %s' % PASSWORD,
                               'bearer_token = %s' % TOKEN])
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertEqual(
            'ERROR: [kronos_prometheus] username and bearer_token are both '
            'set: use either username/password (basic authentication) or '
            'bearer_token, not both\n', err)

    def test_every_problem_a_line(self):
        code, err = self.main(['url = http://%s:%s@prom.example/?a=b'
                               % (USER, PASSWORD),
                               'password = %s' % PASSWORD])
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        lines = err.splitlines()
        self.assertEqual(2, len(lines), err)
        self.assertTrue(all(line.startswith('ERROR: [kronos_prometheus] ')
                            for line in lines), err)

    def test_unparsable_url_is_not_echoed(self):
        # oslo.config's own error quotes the value, userinfo included.
        for url in ('ftp://%s:%s@prom.example' % (USER, PASSWORD),
                    'http://%s:%s@prom.example:port' % (USER, PASSWORD)):
            code, err = self.main(['url = %s' % url])
            self.assertEqual(manage.EXIT_BAD_INPUT, code)
            self.assertEqual(
                'ERROR: bad value of [kronos_prometheus] url in the config '
                'files: not an http or https URL with a host (the value is '
                'not shown: it may hold credentials)\n', err)

    def test_file_source_does_not_check_prometheus(self):
        # [kronos_prometheus] is not used: the policies file is the error.
        path = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(path, 'w') as f:
            f.write('[kronos]\nmetric_source = file\nmetrics_file = x\n'
                    'policies_file = /nonexistent.yaml\n'
                    '[kronos_prometheus]\nusername = u\nbearer_token = t\n')
        err = io.StringIO()
        code = manage.main(['--config-file', path, 'kronos',
                            'validate-policies'],
                           out=io.StringIO(), err=err)
        self.assertEqual(manage.EXIT_BAD_INPUT, code)
        self.assertIn('/nonexistent.yaml', err.getvalue())
        self.assertNotIn('bearer_token', err.getvalue())
