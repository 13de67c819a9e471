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


"""The real nova-kronos-manage against misbehaving "Prometheus" servers.

Real Nova in-process (eventlet-patched); the servers of
tests.harness.faulty_http trickle, stay silent, or echo the request's
headers (credentials included) back. Each run is configured with basic
authentication, then with a bearer token, in the command's nova.conf, and
must end with the documented exit code, within a bounded time, with no
password, token or ``base64(user:password)`` in stdout, stderr or any log
record (``[DEFAULT] debug = true``, every line read).
"""

from tests.functional import base  # noqa: I100  isort:skip

import base64
import io
import logging
import os
import time

import fixtures
from testtools import content

from nova_kronos.cmd import manage
from nova_kronos.scheduler import loads
from tests.harness import faulty_http
from tests.harness import kronos_cloud

USER = 'kronos-ops'
PASSWORD = 'Fq8-pW3x7Lz'
TOKEN = 'btk-Y6nR0qV2ssw9'
BASIC = base64.b64encode(('%s:%s' % (USER, PASSWORD)).encode()).decode()
SECRETS = (PASSWORD, TOKEN, BASIC)

AUTHS = {'basic': ['username = %s' % USER, 'password = %s' % PASSWORD],
         'bearer': ['bearer_token = %s' % TOKEN]}


class _Records(logging.Handler):
    """Every record of a logger, formatted with its traceback."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(
            '%(levelname)s %(name)s %(message)s'))
        self.lines = []

    def emit(self, record):
        self.lines.extend(self.format(record).splitlines())


class TestPrometheusFaults(base.KronosFunctionalTestCase):

    #: The command talks to the faulty servers only.
    use_prometheus = False
    #: [kronos_prometheus] timeout of the command's nova.conf (with one
    #: retry, which must fit in it).
    TIMEOUT = 1.5
    #: What a run may take beyond the time limit of its one failing query:
    #: validate-policies (starting), rebalance (also reading Nova's
    #: inventory: 0.35-0.6 s idle, 1.22 s once in CI with both workers
    #: busy). Both stay below twice the timeout (3.0 s), which a retry
    #: with a time limit of its own would take.
    OVERHEAD = {'validate-policies': 0.6, 'rebalance': 1.45}

    def setUp(self):
        super().setUp()
        self.timings = []

    def server(self, kind, **kwargs):
        # Slow kinds close a connection after 30 s: a run that does not
        # bound its wait fails on its wall time instead of hanging.
        return self.useFixture(faulty_http.FaultyHTTPServer(
            kind, lifetime=30, **kwargs))

    def configure(self, url, auth, extra=()):
        """The harness' nova.conf, pointed at ``url`` with ``auth``."""
        self.write_conf()
        lines = ['', '[DEFAULT]', 'debug = true',
                 '[kronos]', 'metric_source = prometheus',
                 '[kronos_prometheus]', 'url = %s' % url,
                 'timeout = %g' % self.TIMEOUT, 'retries = 1']
        with open(self.conf_path, 'a') as f:
            f.write('\n'.join(lines + AUTHS[auth] + list(extra)) + '\n')

    def run_manage(self, *args):
        """:meth:`manage`, with every log record and stderr captured.

        :returns: ``(exit code, stdout, stderr, seconds)``.
        """
        # oslo.log's set-up in the command replaces the root logger's
        # handlers with one writing to sys.stderr (bound when it is made):
        # catch that stream, and the records of our loggers directly.
        stream = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', stream))
        records = _Records()
        for name in ('nova_kronos', 'urllib3', 'requests',
                     'prometheus_api_client'):
            logger = logging.getLogger(name)
            logger.addHandler(records)
            self.addCleanup(logger.removeHandler, records)
        start = time.monotonic()
        code, out, err = self.manage(*args)
        seconds = time.monotonic() - start
        self.timings.append((args[1], round(seconds, 2)))
        self.addDetail('timings', content.text_content(
            repr(self.timings)))
        logged = stream.getvalue().splitlines() + records.lines + \
            self.stdlog.logger.output.splitlines()
        for where, lines in (('stdout', out.splitlines()),
                             ('stderr', err.splitlines()),
                             ('log', logged)):
            for line in lines:
                for secret in SECRETS:
                    self.assertNotIn(secret, line, '%s of %s' % (where,
                                                                 args))
        # Each error is one line, marked.
        for line in err.splitlines():
            self.assertTrue(line.startswith('ERROR: '), err)
        return code, out, err, seconds

    def check_runs(self, server, rebalance_code, validate_code, slow,
                   expected):
        """Both commands, with each authentication, against ``server``.

        :param slow: True when the server never answers: a run takes the
            query's time limit (and less than :attr:`OVERHEAD` more).
        :param expected: text every stderr holds.
        """
        for auth in AUTHS:
            self.configure(server.url, auth)
            for args, want in ((('kronos', 'rebalance', '--format', 'json'),
                                rebalance_code),
                               (('kronos', 'validate-policies'),
                                validate_code)):
                code, out, err, seconds = self.run_manage(*args)
                self.assertEqual(want, code, err)
                self.assertIn(expected, err)
                self.assertEqual('', out)
                if slow:
                    self.assertGreater(seconds, self.TIMEOUT - 0.05)
                self.assertLess(seconds, self.TIMEOUT + self.OVERHEAD[args[1]])

    def test_trickling_body(self):
        self.check_runs(self.server('trickle'), manage.EXIT_UNAVAILABLE,
                        manage.EXIT_UNAVAILABLE, True,
                        'did not answer within 1.5 s ([kronos_prometheus] '
                        'timeout)')

    def test_trickling_headers(self):
        self.check_runs(self.server('trickle-headers'),
                        manage.EXIT_UNAVAILABLE, manage.EXIT_UNAVAILABLE,
                        True, 'did not answer within 1.5 s')

    def test_silent_server(self):
        self.check_runs(self.server('silent'), manage.EXIT_UNAVAILABLE,
                        manage.EXIT_UNAVAILABLE, True,
                        'did not answer within 1.5 s')

    def test_proxy_page_echoing_the_credentials(self):
        self.check_runs(self.server('echo-html'), manage.EXIT_UNAVAILABLE,
                        manage.EXIT_UNAVAILABLE, False,
                        'HTTP 502 (text/html; charset=utf-8, ')

    def test_json_error_echoing_the_credentials(self):
        # The error envelope is quoted, redacted (the echoed Authorization
        # header comes within the quoted characters). validate-policies
        # takes a bad_data error for Prometheus' verdict: bad input.
        for status in (200, 500):
            self.check_runs(self.server('echo-json', status=status),
                            manage.EXIT_UNAVAILABLE, manage.EXIT_BAD_INPUT,
                            False, 'Authorization: ***')

    def test_refused_options(self):
        server = self.server('echo-html')
        url = server.url.replace('://', '://%s:%s@' % (USER, PASSWORD))
        for auth, extra, expected in (
                ('bearer', ['url = %s' % url],
                 'ERROR: [kronos_prometheus] url must not carry credentials '
                 '(user:password@): set [kronos_prometheus] username and '
                 'password, or bearer_token, instead (url without them: '
                 '%s)\n' % server.url),
                ('basic', AUTHS['bearer'],
                 'ERROR: [kronos_prometheus] username and bearer_token are '
                 'both set: use either username/password (basic '
                 'authentication) or bearer_token, not both\n')):
            self.configure(server.url, auth, extra)
            for args in (('kronos', 'rebalance'),
                         ('kronos', 'validate-policies')):
                code, out, err, _ = self.run_manage(*args)
                self.assertEqual(manage.EXIT_BAD_INPUT, code, err)
                self.assertEqual(expected, err)


class TestSchedulingAgainstFaultyPrometheus(base.KronosFunctionalTestCase):
    """nova-scheduler, configured as README.rst says, and a bad server.

    Every boot is scheduled (the weigher's fetch is bounded by ``[kronos]
    fetch_timeout``, 2 s by default) and no log line quotes a secret.
    """

    readme_scheduler = True
    use_prometheus = False

    def capture_logs(self):
        """Every record of every logger from now on, at DEBUG."""
        records = _Records()
        root = logging.getLogger()
        root.addHandler(records)
        self.addCleanup(root.removeHandler, records)
        return records

    def boot_against(self, kind, auth, **kwargs):
        server = self.useFixture(faulty_http.FaultyHTTPServer(
            kind, lifetime=30, **kwargs))
        self.flags(metric_source='prometheus', group='kronos')
        self.flags(url=server.url, username=None, password=None,
                   bearer_token=None, group='kronos_prometheus')
        for line in AUTHS[auth]:
            name, _, value = line.partition(' = ')
            self.flags(**{name: value, 'group': 'kronos_prometheus'})
        return self.boot_and_read_logs('%s-%s' % (kind, auth))

    def boot_and_read_logs(self, name, secrets=SECRETS):
        """Boot one server through nova-scheduler with a cold load cache.

        :returns: ``(seconds the boot took, every log line meanwhile)``,
            once the server is ACTIVE and no line holds one of
            ``secrets``.
        """
        records = self.capture_logs()
        loads.reset_shared_cache()
        start = time.monotonic()
        created = self._create_server(name=name, networks='none', az='az1')
        seconds = time.monotonic() - start
        self.assertEqual('ACTIVE', created['status'])
        lines = records.lines + self.stdlog.logger.output.splitlines()
        for line in lines:
            for secret in secrets:
                self.assertNotIn(secret, line)
        return seconds, lines

    def test_slow_servers_delay_a_boot_by_the_fetch_timeout_at_most(self):
        for kind in ('trickle', 'trickle-headers', 'silent'):
            for auth in AUTHS:
                seconds, lines = self.boot_against(kind, auth)
                # A boot takes about 0.5 s here; the fetch at most 2 s.
                self.assertLess(seconds, 2.0 + 2.0, (kind, auth))
                self.assertTrue(
                    [line for line in lines if 'did not answer within'
                     in line and "caller's deadline" in line], lines)

    def test_echoing_servers_never_leak_credentials(self):
        for kind, expected in (('echo-html', 'not quoted'),
                               ('echo-json', 'Authorization: ***')):
            for auth in AUTHS:
                _, lines = self.boot_against(kind, auth)
                self.assertTrue([line for line in lines
                                 if expected in line], lines)

    def test_install_doc_credentials_snippet(self):
        # doc/source/install.rst's snippet, as written, with this test's
        # server for the example URL and a password for "<secret>".
        snippet = kronos_cloud.readme_scheduler_conf(
            os.path.join(kronos_cloud.ROOT, 'doc', 'source', 'install.rst'),
            section='Prometheus time limits and credentials')
        self.assertEqual(['kronos_prometheus'], list(snippet))
        server = self.useFixture(faulty_http.FaultyHTTPServer('echo-json'))
        self.flags(metric_source='prometheus', group='kronos')
        for name, values in snippet['kronos_prometheus'].items():
            value = {'url': server.url, 'password': PASSWORD}.get(
                name, values[-1])
            if name == 'password':
                self.assertEqual('<secret>', values[-1])
            self.flags(**{name: value, 'group': 'kronos_prometheus'})
        basic = base64.b64encode(('%s:%s' % (
            snippet['kronos_prometheus']['username'][-1],
            PASSWORD)).encode()).decode()
        _, lines = self.boot_and_read_logs('doc-snippet',
                                           secrets=(PASSWORD, basic))
        # Basic authentication was sent (the server echoed it) and only
        # ever shown redacted.
        self.assertTrue([line for line in lines
                         if 'Authorization: ***' in line], lines)

    def test_credentials_in_the_url_are_refused(self):
        server = self.useFixture(faulty_http.FaultyHTTPServer('echo-json'))
        url = server.url.replace('://', '://%s:%s@' % (USER, PASSWORD))
        self.flags(metric_source='prometheus', group='kronos')
        self.flags(url=url, group='kronos_prometheus')
        _, lines = self.boot_and_read_logs('in-url')
        self.assertTrue([line for line in lines
                         if 'url must not carry credentials' in line], lines)
