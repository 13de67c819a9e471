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

"""Misbehaving HTTP servers on 127.0.0.1, for tests of time limits and
of what messages quote.

:class:`FaultyHTTPServer` is a fixture running one server of a
:data:`KINDS` in a child process (``python -m tests.harness.faulty_http``,
stdlib ``http.server``/``socketserver`` with a thread per connection).
The child process keeps the servers apart from the test process's
concurrency model: once Nova's harness has monkey-patched it with eventlet,
an in-process server thread blocked in a real ``select`` would stall every
green thread, the client's included. The fixture stops the child (by its
PID) at cleanup; the child also exits when its parent is gone.

Kinds:

``trickle``
    HTTP 200 (``--status``), ``Content-Type: application/json``, no
    length, then one body byte every ``interval`` seconds, forever.
``trickle-headers``
    The status line, then one byte of a header line every ``interval``
    seconds, forever: the headers never end.
``echo-html``
    HTTP 502 (``--status``), ``text/html``: a page quoting every request
    header and the request line, as a misconfigured proxy might.
``echo-json``
    HTTP 200 (``--status``), Prometheus' error envelope ``{"status":
    "error", "errorType": "bad_data", "error": "<request headers and
    line>"}``.
``silent``
    Accepts the connection, reads the request and never answers.

``lifetime`` (seconds, default None: forever) makes ``trickle``,
``trickle-headers`` and ``silent`` close a connection after that long, so
a client that does not bound its wait fails a test instead of hanging it.
``headers`` adds response headers to ``trickle``, ``echo-html`` and
``echo-json`` (e.g. ``{'Retry-After': '3600'}``).
"""

import argparse
import http.server
import json
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

import fixtures

from tests.harness import processes

KINDS = ('trickle', 'trickle-headers', 'echo-html', 'echo-json', 'silent')
DEFAULT_STATUS = {'trickle': 200, 'echo-html': 502, 'echo-json': 200}

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class FaultyHTTPError(Exception):
    """The faulty server could not be started."""


class FaultyHTTPServer(fixtures.Fixture):
    """One misbehaving HTTP server on 127.0.0.1:<free port>.

    :param kind: one of :data:`KINDS`.
    :param status: HTTP status of ``trickle``, ``echo-html`` and
        ``echo-json`` (default: 200, 502, 200).
    :param interval: seconds between two trickled bytes.
    :param lifetime: seconds after which ``trickle``, ``trickle-headers``
        and ``silent`` close a connection (None: never).
    :param headers: dict of extra response headers.

    After setUp, :attr:`url` is ``http://127.0.0.1:<port>`` and
    :attr:`port` the port.
    """

    def __init__(self, kind, status=None, interval=0.2, lifetime=None,
                 headers=None, startup_timeout=15):
        super().__init__()
        if kind not in KINDS:
            raise ValueError('unknown kind %r (one of %s)'
                             % (kind, ', '.join(KINDS)))
        self.kind = kind
        self.status = status or DEFAULT_STATUS.get(kind, 200)
        self.interval = interval
        self.lifetime = lifetime
        self.headers = dict(headers or {})
        self.startup_timeout = startup_timeout
        self.process = None
        self.port = None
        self.url = None

    def _setUp(self):
        tmpdir = self.useFixture(fixtures.TempDir()).path
        port_file = os.path.join(tmpdir, 'port')
        self.log_path = os.path.join(tmpdir, 'server.log')
        cmd = [sys.executable, '-m', 'tests.harness.faulty_http', self.kind,
               '--status', str(self.status), '--interval', str(self.interval),
               '--port-file', port_file]
        if self.lifetime is not None:
            cmd += ['--lifetime', str(self.lifetime)]
        for name, value in self.headers.items():
            cmd += ['--header', '%s: %s' % (name, value)]
        with open(self.log_path, 'ab') as log:
            self.process = subprocess.Popen(
                cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log)
        self.addCleanup(self.stop)
        deadline = time.monotonic() + self.startup_timeout
        while not os.path.exists(port_file):
            if self.process.poll() is not None:
                raise FaultyHTTPError(
                    '%s server exited with status %s: %s'
                    % (self.kind, self.process.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                raise FaultyHTTPError('%s server not listening after %g s'
                                      % (self.kind, self.startup_timeout))
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = 'http://127.0.0.1:%d' % self.port

    def log_tail(self, chars=2000):
        try:
            with open(self.log_path, errors='replace') as f:
                return f.read()[-chars:]
        except OSError:
            return ''

    def stop(self):
        """Stop the child process (idempotent)."""
        proc, self.process = self.process, None
        processes.stop(proc)


# --------------------------------------------------------------------------
# The servers (run in the child process)
# --------------------------------------------------------------------------

def _echo(handler):
    """The request's headers as received, then its request line.

    Headers first: a message quotes the start of a text (the request line
    holds the whole PromQL query, which would push them out of it).
    """
    return '%s\n%s' % (str(handler.headers).strip(), handler.requestline)


class _Handler(http.server.BaseHTTPRequestHandler):
    kind = None
    status = 200
    interval = 0.2
    lifetime = None
    extra_headers = ()

    def log_message(self, fmt, *args):
        sys.stderr.write('%s %s\n' % (self.kind, fmt % args))

    def do_GET(self):
        getattr(self, '_' + self.kind.replace('-', '_'))()

    do_POST = do_GET

    def _send(self, content_type, body):
        data = body.encode('utf-8')
        self.send_response(self.status)
        self.send_header('Content-Type', content_type)
        for name, value in self.extra_headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(data)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(data)

    def _echo_html(self):
        self._send('text/html; charset=utf-8',
                   '<html><head><title>%d</title></head><body><h1>Bad '
                   'Gateway</h1><p>Your request:</p><pre>%s</pre></body>'
                   '</html>' % (self.status, _echo(self)))

    def _echo_json(self):
        self._send('application/json', json.dumps({
            'status': 'error', 'errorType': 'bad_data',
            'error': _echo(self)}))

    def _trickle(self):
        self.send_response(self.status)
        self.send_header('Content-Type', 'application/json')
        for name, value in self.extra_headers:
            self.send_header(name, value)
        self.send_header('Connection', 'close')
        self.end_headers()
        self._drip(b'{"status":"success","data":{"resultType":"vector",'
                   b'"result":[', b' ')

    def _trickle_headers(self):
        self.wfile.write(b'HTTP/1.1 200 OK\r\n')
        self._drip(b'X-Slow: ', b'z')

    def _drip(self, head, byte):
        """``head`` one byte at a time, then ``byte`` forever."""
        data = iter(head)
        end = _end(self.lifetime)
        try:
            while time.monotonic() < end:
                self.wfile.write(bytes([next(data, byte[0])]))
                self.wfile.flush()
                time.sleep(self.interval)
        except OSError:
            return  # the client gave up


def _end(lifetime):
    return float('inf') if lifetime is None else time.monotonic() + lifetime


class _SilentHandler(socketserver.BaseRequestHandler):
    lifetime = None

    def handle(self):
        # Read whatever comes until the client closes; answer nothing.
        end = _end(self.lifetime)
        try:
            while time.monotonic() < end:
                self.request.settimeout(max(min(end - time.monotonic(), 1),
                                            0.01))
                try:
                    if not self.request.recv(65536):
                        return
                except TimeoutError:
                    continue
        except OSError:
            pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(kind, status=None, interval=0.2, port=0, lifetime=None,
                headers=()):
    """A socketserver for ``kind`` bound to 127.0.0.1:``port``.

    :param headers: ``(name, value)`` pairs of extra response headers.
    """
    if kind == 'silent':
        handler = type('Handler', (_SilentHandler,), {'lifetime': lifetime})
        return _TCPServer(('127.0.0.1', port), handler)
    handler = type('Handler', (_Handler,), {
        'kind': kind, 'status': status or DEFAULT_STATUS.get(kind, 200),
        'interval': interval, 'lifetime': lifetime,
        'extra_headers': tuple(headers)})
    return _HTTPServer(('127.0.0.1', port), handler)


def _exit_with_parent():
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('kind', choices=KINDS)
    parser.add_argument('--status', type=int)
    parser.add_argument('--interval', type=float, default=0.2)
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--lifetime', type=float,
                        help='close slow connections after this many '
                             'seconds (default: never)')
    parser.add_argument('--header', action='append', default=[],
                        metavar='NAME: VALUE', help='extra response header')
    parser.add_argument('--port-file',
                        help='write the port here once listening')
    args = parser.parse_args(argv)
    headers = [tuple(part.strip() for part in h.split(':', 1))
               for h in args.header]
    server = make_server(args.kind, args.status, args.interval, args.port,
                         args.lifetime, headers)
    port = server.server_address[1]
    if args.port_file:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(args.port_file))
        with os.fdopen(fd, 'w') as f:
            f.write(str(port))
        os.rename(tmp, args.port_file)
    else:
        print('listening on http://127.0.0.1:%d' % port, flush=True)
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == '__main__':
    main()
