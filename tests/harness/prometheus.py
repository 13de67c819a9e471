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

"""A real, throw-away Prometheus server for tests and demos.

``PrometheusServer`` runs the ``prometheus`` binary on 127.0.0.1 with an
empty scrape configuration and the remote-write receiver enabled, so tests
can push exactly the samples they want with :meth:`PrometheusServer.
remote_write` and then run real PromQL against it.

The remote-write payload is a protobuf ``prometheus.WriteRequest`` (message
classes built at run time with ``protobuf``, no protoc step) compressed in
snappy block format (``cramjam``).  Use :func:`require_prometheus` in tests
that need the server: it skips them when the binary is missing, but fails
them when ``$CI`` is true.

Limits worth knowing:

* Prometheus' head block only accepts samples newer than (newest sample
  seen - 1 h), and samples of one series must arrive in time order.  Write
  history ending at "now" and do not rewrite timestamps already written;
  use :meth:`PrometheusServer.reset` (or a new server) for a fresh dataset.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

import cramjam
import fixtures
from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
import requests

from tests.harness import processes

ENV_BINARY = 'KRONOS_PROMETHEUS_BIN'

#: Series per remote-write request.
DEFAULT_BATCH_SIZE = 2000

_CONFIG = """\
# Written by tests.harness.prometheus: no scrape targets, data
# arrives through the remote-write receiver only.
global:
  scrape_interval: 15s
  evaluation_interval: 15s
scrape_configs: []
"""


class PrometheusError(Exception):
    """Starting, querying or writing to the test Prometheus failed."""


def find_prometheus_binary():
    """Return the path of the ``prometheus`` binary, or None.

    ``$KRONOS_PROMETHEUS_BIN`` wins over a ``PATH`` lookup; it is returned
    only if it names an executable file.
    """
    env = os.environ.get(ENV_BINARY)
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        return None
    return shutil.which('prometheus')


def _in_ci():
    return os.environ.get('CI', '').strip().lower() in ('true', '1', 'yes')


def require_prometheus(testcase):
    """Return the ``prometheus`` binary for ``testcase``, or skip it.

    When the binary is missing the test is skipped, except under CI
    (``$CI`` is ``true``, ``1`` or ``yes``, any case), where it fails:
    Prometheus-backed tests must never be silently skipped there.
    """
    binary = find_prometheus_binary()
    if binary is not None:
        return binary
    env = os.environ.get(ENV_BINARY)
    if env:
        reason = ('$%s=%s is not an executable file' % (ENV_BINARY, env))
    else:
        reason = ('prometheus binary not found on PATH (apt-get install '
                  'prometheus, or set $%s)' % ENV_BINARY)
    if _in_ci():
        testcase.fail(reason + '; $CI is set, so this is a failure, '
                      'not a skip')
    testcase.skipTest(reason)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# Remote-write payload: protobuf prometheus.WriteRequest, snappy block format
# --------------------------------------------------------------------------

def _remote_write_pool():
    """A descriptor pool holding the remote-write 1.0 ``WriteRequest``.

    Built at run time from a FileDescriptorProto (the fields we send of
    prometheus/prompb/types.proto and remote.proto), in a private
    descriptor pool so nothing else registering ``prometheus.*`` clashes.
    """
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name='nova_kronos_tests/prometheus_remote_write.proto',
        package='prometheus', syntax='proto3')

    def message(name, *fields):
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, type_name in fields:
            if type_name:   # repeated sub-message
                msg.field.add(name=fname, number=number, type=ftype,
                              label=field.LABEL_REPEATED,
                              type_name=type_name)
            else:
                msg.field.add(name=fname, number=number, type=ftype,
                              label=field.LABEL_OPTIONAL)

    message('Label', ('name', 1, field.TYPE_STRING, ''),
            ('value', 2, field.TYPE_STRING, ''))
    message('Sample', ('value', 1, field.TYPE_DOUBLE, ''),
            ('timestamp', 2, field.TYPE_INT64, ''))
    message('TimeSeries',
            ('labels', 1, field.TYPE_MESSAGE, '.prometheus.Label'),
            ('samples', 2, field.TYPE_MESSAGE, '.prometheus.Sample'))
    message('WriteRequest',
            ('timeseries', 1, field.TYPE_MESSAGE, '.prometheus.TimeSeries'))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return pool


_POOL = _remote_write_pool()
# A class for every message type, held here: protobuf 4.22-4.24 (upb)
# crashes once the implicitly created sub-message classes are collected.
_MESSAGES = {
    name: message_factory.GetMessageClass(
        _POOL.FindMessageTypeByName('prometheus.' + name))
    for name in ('Label', 'Sample', 'TimeSeries', 'WriteRequest')}
WriteRequest = _MESSAGES['WriteRequest']


def encode_write_request(series):
    """Serialized ``prometheus.WriteRequest`` (not yet compressed).

    :param series: iterable of ``(labels, samples)`` where ``labels`` is a
        ``dict`` including ``__name__`` and ``samples`` a list of
        ``(timestamp_ms, value)`` in increasing time order.  Labels are
        sent sorted by name, as Prometheus requires.
    """
    request = WriteRequest()
    add_series = request.timeseries.add
    for labels, samples in series:
        ts = add_series()
        add_label = ts.labels.add
        for name in sorted(labels):
            add_label(name=name, value=labels[name])
        add_sample = ts.samples.add
        for timestamp_ms, value in samples:
            add_sample(timestamp=int(timestamp_ms), value=float(value))
    return request.SerializeToString()


def _snappy(data):
    # Remote write uses the snappy *block* format, not the framing format.
    return bytes(cramjam.snappy.compress_raw(data))


# --------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------

class PrometheusServer(fixtures.Fixture):
    """A private Prometheus process listening on 127.0.0.1:<free port>.

    Use as a fixture (``self.useFixture(PrometheusServer())``), as a context
    manager, or call :meth:`start` / :meth:`stop` directly.
    """

    def __init__(self, binary=None, startup_timeout=30.0, extra_args=()):
        super().__init__()
        self.binary = binary or find_prometheus_binary()
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self.port = None
        self.url = None
        self.tmpdir = None
        self.process = None
        self._log = None
        self._session = None

    # fixtures.Fixture hook
    def _setUp(self):
        self.start()
        self.addCleanup(self.stop)

    @property
    def log_path(self):
        return os.path.join(self.tmpdir, 'prometheus.log') if self.tmpdir \
            else None

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors='replace') as f:
                return ''.join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return ''

    def start(self):
        if self.process is not None:
            raise PrometheusError('Prometheus already started at %s'
                                  % self.url)
        if not self.binary:
            raise PrometheusError(
                'prometheus binary not found (install it or set $%s)'
                % ENV_BINARY)
        self.tmpdir = tempfile.mkdtemp(prefix='nova-kronos-prometheus-')
        self._session = requests.Session()
        try:
            self._launch(port=_free_port())
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, port):
        config = os.path.join(self.tmpdir, 'prometheus.yml')
        with open(config, 'w') as f:
            f.write(_CONFIG)
        data = os.path.join(self.tmpdir, 'data')
        os.makedirs(data, exist_ok=True)
        self.port = port
        self.url = 'http://127.0.0.1:%d' % port
        cmd = [self.binary,
               '--config.file=%s' % config,
               '--storage.tsdb.path=%s' % data,
               '--storage.tsdb.retention.time=1d',
               '--web.listen-address=127.0.0.1:%d' % port,
               '--web.enable-remote-write-receiver',
               '--log.level=warn'] + self.extra_args
        self._log = open(self.log_path, 'ab')
        self.process = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.tmpdir)
        self._wait_ready()

    def _wait_ready(self):
        deadline = time.monotonic() + self.startup_timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PrometheusError(
                    'prometheus exited with status %s during startup; '
                    'log tail:\n%s' % (self.process.returncode,
                                       self.log_tail()))
            try:
                resp = self._session.get(self.url + '/-/ready', timeout=2)
                if resp.status_code == 200:
                    return
                last = 'HTTP %d' % resp.status_code
            except requests.RequestException as exc:
                last = str(exc)
            time.sleep(0.05)
        raise PrometheusError(
            'prometheus at %s not ready after %.0f s (last: %s); log tail:\n%s'
            % (self.url, self.startup_timeout, last, self.log_tail()))

    def _terminate(self):
        proc, self.process = self.process, None
        processes.stop(proc)
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self):
        """Stop the process and remove its data.  Idempotent."""
        self._terminate()
        if self._session is not None:
            self._session.close()
            self._session = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def reset(self):
        """Drop all data by restarting on the same port with an empty TSDB.

        Prometheus does not accept rewritten history, so this is the way to
        load a different dataset (takes ~0.1 s).
        """
        if self.tmpdir is None:
            raise PrometheusError('Prometheus is not running')
        self._terminate()
        shutil.rmtree(os.path.join(self.tmpdir, 'data'), ignore_errors=True)
        self._launch(port=self.port)

    def remote_write(self, series, batch_size=DEFAULT_BATCH_SIZE):
        """Push ``(labels, [(timestamp_ms, value), ...])`` series.

        Returns the number of series written.  Raises PrometheusError with
        the server's message on any non-2xx answer.
        """
        if self.url is None:
            raise PrometheusError('Prometheus is not running')
        headers = {
            'Content-Encoding': 'snappy',
            'Content-Type': 'application/x-protobuf',
            'X-Prometheus-Remote-Write-Version': '0.1.0',
        }
        total = 0
        batch = []
        session = self._session or requests

        def flush():
            body = _snappy(encode_write_request(batch))
            resp = session.post(self.url + '/api/v1/write', data=body,
                                headers=headers, timeout=60)
            if not 200 <= resp.status_code < 300:
                raise PrometheusError(
                    'remote write of %d series failed: HTTP %d: %s'
                    % (len(batch), resp.status_code, resp.text.strip()))

        for item in series:
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
                total += len(batch)
                batch = []
        if batch:
            flush()
            total += len(batch)
        return total
