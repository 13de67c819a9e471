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

The remote-write payload (a protobuf ``WriteRequest`` compressed with snappy
block format) is encoded by hand below, so no protobuf or snappy library is
needed.

Limits worth knowing:

* Prometheus' head block only accepts samples newer than (newest sample
  seen - 1 h), and samples of one series must arrive in time order.  Write
  history ending at "now" and do not rewrite timestamps already written;
  use :meth:`PrometheusServer.reset` (or a new server) for a fresh dataset.
"""

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import fixtures
import requests

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


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------
# Hand-written protobuf encoding of prometheus.WriteRequest
# --------------------------------------------------------------------------

_MASK64 = (1 << 64) - 1


def encode_varint(value):
    """Encode ``value`` as a protobuf base-128 varint.

    Negative ints use 64-bit two's complement (10 bytes), as protobuf does
    for ``int64``.
    """
    value &= _MASK64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len_field(field_number, payload):
    # wire type 2: length-delimited
    return (encode_varint(field_number << 3 | 2) + encode_varint(len(payload))
            + payload)


_SAMPLE_VALUE_TAG = bytes([1 << 3 | 1])   # field 1, wire type 1 (64-bit)
_SAMPLE_TS_TAG = bytes([2 << 3 | 0])      # field 2, wire type 0 (varint)
_pack_double = struct.Struct('<d').pack


def encode_label(name, value):
    """``Label{string name = 1; string value = 2}``."""
    return (_len_field(1, name.encode('utf-8'))
            + _len_field(2, value.encode('utf-8')))


def encode_sample(timestamp_ms, value):
    """``Sample{double value = 1; int64 timestamp = 2}``."""
    return (_SAMPLE_VALUE_TAG + _pack_double(float(value))
            + _SAMPLE_TS_TAG + encode_varint(int(timestamp_ms)))


def encode_timeseries(labels, samples):
    """``TimeSeries{repeated Label labels = 1; repeated Sample samples = 2}``.

    Labels are written sorted by name, as Prometheus requires.
    """
    parts = [_len_field(1, encode_label(name, labels[name]))
             for name in sorted(labels)]
    for ts, value in samples:
        parts.append(_len_field(2, encode_sample(ts, value)))
    return b''.join(parts)


def encode_write_request(series):
    """``WriteRequest{repeated TimeSeries timeseries = 1}``.

    :param series: iterable of ``(labels, samples)`` where ``labels`` is a
        ``dict`` including ``__name__`` and ``samples`` a list of
        ``(timestamp_ms, value)`` in increasing time order.
    """
    return b''.join(_len_field(1, encode_timeseries(labels, samples))
                    for labels, samples in series)


# --------------------------------------------------------------------------
# Hand-written snappy block-format compression (literals only)
# --------------------------------------------------------------------------

#: Longest literal we emit in one element (any length up to 2**32 is legal).
_SNAPPY_MAX_LITERAL = 65536


def _snappy_literal_tag(length):
    """Tag for a literal element of ``length`` (>= 1) bytes.

    The low two bits are 0b00 (literal).  For ``length - 1 < 60`` the upper
    six bits hold ``length - 1``; otherwise they hold 60..63 meaning that
    ``length - 1`` follows as a 1..4 byte little-endian integer.
    """
    n = length - 1
    if n < 60:
        return bytes([n << 2])
    extra = (n.bit_length() + 7) // 8
    if extra > 4:
        raise ValueError('snappy literal too long: %d' % length)
    return bytes([(59 + extra) << 2]) + n.to_bytes(extra, 'little')


def snappy_compress(data):
    """Encode ``data`` in snappy block format using only literal elements.

    This "compresses" nothing but is a valid snappy stream: a varint of the
    uncompressed length followed by literal chunks.
    """
    data = bytes(data)
    out = [encode_varint(len(data))]
    for start in range(0, len(data), _SNAPPY_MAX_LITERAL):
        chunk = data[start:start + _SNAPPY_MAX_LITERAL]
        out.append(_snappy_literal_tag(len(chunk)))
        out.append(chunk)
    return b''.join(out)


def snappy_decompress(data):
    """Decode a snappy block containing literals and copies (for tests)."""
    data = bytes(data)
    length = shift = pos = 0
    while True:
        b = data[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            n = tag >> 2
            if n >= 60:
                extra = n - 59
                n = int.from_bytes(data[pos:pos + extra], 'little')
                pos += extra
            n += 1
            out += data[pos:pos + n]
            pos += n
            continue
        if kind == 1:
            n = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], 'little')
            pos += 2
        else:
            n = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], 'little')
            pos += 4
        for _ in range(n):
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError('snappy: expected %d bytes, got %d'
                         % (length, len(out)))
    return bytes(out)


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
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
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
            body = snappy_compress(encode_write_request(batch))
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
