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


"""Prometheus metric source, on prometheus-api-client.

Each PromQL query is one instant query (``/api/v1/query``) through
prometheus-api-client's ``PrometheusConnect.custom_query``; connection,
TLS, authentication, timeout and retries come from ``[kronos_prometheus]``
and live in one ``requests`` session that
:meth:`PrometheusSource.check_syntax` shares (the client has no call for
``/api/v1/format_query``).

Time limits
-----------
``[kronos_prometheus] timeout`` bounds one query's *whole* exchange, not
each socket operation: connecting, every read of the headers and of the
body, urllib3's retries and the pauses between them (``Retry-After``
included) all draw on one budget, so a server that trickles its answer
byte by byte cannot hold a query longer. A caller can also give an
absolute deadline (a :func:`time.monotonic` value) to :meth:`PrometheusSource.
query` and to :meth:`~nova_kronos.metrics.MetricSource.collect`; each query
then gets ``min(timeout, time left)``. The deadline travels in a
:class:`contextvars.ContextVar`, so one source (and its session) is shared
safely by threads and by eventlet green threads. Not bounded by it: the
name resolution of the Prometheus host (the resolver's own timeouts) and
the reads of a TLS handshake (each waits at most the time left when the
connection started).

Secrets
-------
Credentials belong in ``username``/``password`` or ``bearer_token``:
:func:`check_options` refuses them in ``url``, and ``username`` together
with ``bearer_token``. No message quotes a body that is not Prometheus'
JSON error envelope (a proxy's page may echo the request's headers); the
``errorType``/``error`` it does quote pass through :func:`redact`, which
masks the configured password, token, their ``Authorization`` forms and
whatever follows an ``Authorization`` header name. URLs in messages carry
neither userinfo nor a query string.

Every failure is a :class:`~nova_kronos.metrics.MetricsError` whose message
is one line naming the URL: Prometheus unreachable, no answer in time, an
HTTP error, an answer that is not the API's JSON envelope
(``custom_query`` lets ``KeyError``/``TypeError``/``ValueError`` out for a
body without ``data.result``), a result that is not an instant vector.
Text copied from the server is cut at :data:`QUOTED_CHARS` characters.
"""

import base64
import contextlib
import contextvars
import http.client
import io
import math
import os
import re
import socket
import ssl
import time

from prometheus_api_client import PrometheusApiClientException
from prometheus_api_client import PrometheusConnect
import requests
from requests import adapters as requests_adapters
from urllib3 import connection as urllib3_connection
from urllib3 import connectionpool as urllib3_connectionpool
from urllib3 import exceptions as urllib3_exceptions
from urllib3 import poolmanager as urllib3_poolmanager
from urllib3.util import retry as urllib3_retry

from nova_kronos import metrics
from nova_kronos import text as text_mod

#: Characters of an answer (or an error) from the server quoted in a
#: MetricsError.
QUOTED_CHARS = 200

#: What :func:`redact` puts in place of a secret.
MASK = '***'

_QUERY = '/api/v1/query'
_FORMAT_QUERY = '/api/v1/format_query'
# Prometheus' prefix to the parse error of the "query" parameter.
_PARAM_PREFIX = 'invalid parameter "query": '
# Header names whose value is a credential, up to the end of the line.
_CREDENTIAL_HEADER = re.compile(
    r'''((?:proxy-)?authorization|cookie)(["']?\s*[:=]\s*)[^\r\n]*''',
    re.IGNORECASE)


# --------------------------------------------------------------------------
# Options and secrets
# --------------------------------------------------------------------------

def check_options(opts):
    """Problems of ``[kronos_prometheus]`` that the source refuses.

    Credentials in ``url`` (``https://user:pw@host``): they would show in
    every message and log line naming the URL. ``username`` together with
    ``bearer_token`` (one Authorization header: one would be dropped
    silently), ``password`` without ``username``. A query string or
    fragment in ``url`` (the API path is appended to it).

    :param opts: the ``[kronos_prometheus]`` group of a ConfigOpts, or any
        object with ``url``, ``username``, ``password`` and
        ``bearer_token``.
    :returns: list of one-line problems naming the option, empty when the
        options are usable. No problem quotes a password or a token.
    """
    problems = []
    url = str(opts.url or '')
    shown = shown_url(url)
    if '@' in url:
        problems.append(
            '[kronos_prometheus] url must not carry credentials '
            '(user:password@): set [kronos_prometheus] username and '
            'password, or bearer_token, instead (url without them: %s)'
            % shown)
    elif '?' in url or '#' in url:
        problems.append(
            '[kronos_prometheus] url must not have a query string or a '
            'fragment: the API path is appended to it (url without them: '
            '%s)' % shown)
    if opts.username and opts.bearer_token:
        problems.append(
            '[kronos_prometheus] username and bearer_token are both set: '
            'use either username/password (basic authentication) or '
            'bearer_token, not both')
    if opts.password and not opts.username:
        problems.append(
            '[kronos_prometheus] password is set without username: set '
            'username too, or use bearer_token')
    return problems


def shown_url(url):
    """``url`` fit for a message: no userinfo, query string or fragment.

    :returns: ``scheme://host[:port]/path`` without a trailing slash.
    """
    url = str(url or '')
    scheme, sep, rest = url.partition('://')
    if not sep:
        scheme, rest = '', url
    # Everything up to the last "@" may be userinfo, even where a "/", "?"
    # or "#" in a password would end the authority for a URL parser.
    rest = rest.rpartition('@')[2]
    rest = re.split(r'[?#]', rest, maxsplit=1)[0]
    return '%s%s%s' % (scheme, sep, rest.rstrip('/'))


def secrets_of(opts):
    """The texts of ``[kronos_prometheus]`` that :func:`redact` masks.

    :returns: tuple of the password, the bearer token and
        ``base64(username:password)`` (what basic authentication sends),
        the non-empty ones, longest first.
    """
    found = set()
    if opts.password:
        found.add(opts.password)
    if opts.bearer_token:
        found.add(opts.bearer_token)
    if opts.username:
        pair = '%s:%s' % (opts.username, opts.password or '')
        found.add(base64.b64encode(pair.encode('latin-1', 'replace'))
                  .decode('ascii'))
        found.add(base64.b64encode(pair.encode('utf-8')).decode('ascii'))
    return tuple(sorted(found, key=len, reverse=True))


def redact(text, secrets=()):
    """``text`` with every credential replaced by :data:`MASK`.

    Whatever follows an ``Authorization``, ``Proxy-Authorization`` or
    ``Cookie`` header name (``:`` or ``=``, any case) up to the end of its
    line goes, then each of ``secrets`` wherever it appears. Redact before
    cutting a text (:func:`quote` does): a cut could split a secret.

    :param text: any object; its ``str()`` is redacted.
    :param secrets: texts to mask (see :func:`secrets_of`).
    :returns: str.
    """
    text = _CREDENTIAL_HEADER.sub(r'\1\2' + MASK, str(text))
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def quote(text, secrets=(), limit=QUOTED_CHARS):
    """Outside text for a message: redacted, then on one line and cut.

    :returns: :func:`redact`, then :func:`nova_kronos.text.one_line` with
        ``limit`` characters.
    """
    return text_mod.one_line(redact(text, secrets), limit)


# --------------------------------------------------------------------------
# One time limit for a whole exchange
# --------------------------------------------------------------------------

class _TimeUp(Exception):
    """The exchange's deadline came (raised through urllib3 and requests)."""


class _Exchange:
    """The time limit of one query, and the last response it got."""

    def __init__(self, deadline):
        self.deadline = deadline
        self.response = None


# The current exchange of this thread or green thread (greenlets have their
# own context), so a shared session serves concurrent callers.
_EXCHANGE = contextvars.ContextVar('nova_kronos_prometheus_exchange',
                                   default=None)


def _time_left():
    """Seconds left to the current exchange, or None when unbounded."""
    exchange = _EXCHANGE.get()
    if exchange is None or exchange.deadline is None:
        return None
    return exchange.deadline - time.monotonic()


@contextlib.contextmanager
def _exchange(deadline):
    exchange = _Exchange(deadline)
    token = _EXCHANGE.set(exchange)
    try:
        yield exchange
    finally:
        _EXCHANGE.reset(token)


class _DeadlineReader(io.RawIOBase):
    """Socket reads that each wait at most the time left.

    Wraps the socket file http.client opened (it keeps the socket open
    while the response is read, even once the connection is closed).
    """

    def __init__(self, sock, socket_file):
        super().__init__()
        self._sock = sock
        self._file = socket_file
        self._raw = socket_file.raw

    def readable(self):
        return True

    def readinto(self, buffer):
        left = _time_left()
        if left is not None:
            if left <= 0:
                raise socket.timeout('timed out')
            self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self):
        if not self.closed:
            self._file.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, reading through a :class:`_DeadlineReader`.

    Status line, headers and body: every read.
    """

    def __init__(self, sock, *args, **kwargs):
        super().__init__(sock, *args, **kwargs)
        if getattr(self.fp, 'raw', None) is not None:
            self.fp = io.BufferedReader(_DeadlineReader(sock, self.fp))


class _DeadlineConnectionMixin:
    response_class = _DeadlineResponse

    def connect(self):
        left = _time_left()
        if left is not None:
            if left <= 0:
                raise urllib3_exceptions.ConnectTimeoutError(
                    self, 'no time left to connect')
            if not isinstance(self.timeout, (int, float)) or \
                    self.timeout > left:
                self.timeout = left
        super().connect()


class _DeadlineHTTPConnection(_DeadlineConnectionMixin,
                              urllib3_connection.HTTPConnection):
    pass


class _DeadlineHTTPSConnection(_DeadlineConnectionMixin,
                               urllib3_connection.HTTPSConnection):
    pass


class _DeadlineHTTPPool(urllib3_connectionpool.HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _DeadlineHTTPSPool(urllib3_connectionpool.HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOL_CLASSES = {'http': _DeadlineHTTPPool, 'https': _DeadlineHTTPSPool}


class _DeadlineAdapter(requests_adapters.HTTPAdapter):
    """HTTPAdapter whose connections honour the exchange's deadline."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # SOCKS proxies have pool classes of their own.
        if manager.pool_classes_by_scheme is \
                urllib3_poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager


class _DeadlineRetry(urllib3_retry.Retry):
    """urllib3 retries that never pause past the exchange's deadline.

    When the pause before a retry (backoff, or the server's
    ``Retry-After``) would not end before the deadline, there is no retry:
    the last answer (or error) is the exchange's.
    """

    def increment(self, method=None, url=None, response=None, error=None,
                  _pool=None, _stacktrace=None):
        new = super().increment(method, url, response, error, _pool,
                                _stacktrace)
        left = _time_left()
        if left is not None and new._wait(response) >= left:
            # Taken as "retries exhausted": urllib3 returns the response,
            # or raises the error.
            raise urllib3_exceptions.MaxRetryError(
                _pool, url, error or urllib3_exceptions.ResponseError(
                    'no time left to retry'))
        return new

    def _wait(self, response):
        """Seconds :meth:`sleep` would pause before the next attempt."""
        if self.respect_retry_after_header and response is not None:
            wait = self.get_retry_after(response)
            if wait:
                return wait
        return self.get_backoff_time()

    def sleep_for_retry(self, response):
        wait = self.get_retry_after(response)
        if wait:
            _pause(wait)
            return True
        return False

    def sleep(self, response=None):
        if self.respect_retry_after_header and response is not None and \
                self.sleep_for_retry(response):
            return
        _pause(self.get_backoff_time())


def _pause(seconds):
    left = _time_left()
    if left is not None and seconds >= left:
        raise _TimeUp()
    if seconds > 0:
        time.sleep(seconds)


class _DeadlineSession(requests.Session):
    """A requests session whose every exchange ends by a deadline.

    The deadline is the current exchange's (see :func:`_exchange`),
    tightened to ``now + timeout`` when ``timeout`` is one number; it
    bounds connecting, every read and urllib3's retries. The final
    response is kept in the exchange, for messages.
    """

    def __init__(self):
        super().__init__()
        self.mount('https://', _DeadlineAdapter())
        self.mount('http://', _DeadlineAdapter())

    def send(self, request, **kwargs):
        outer = _EXCHANGE.get()
        deadline = outer.deadline if outer is not None else None
        timeout = kwargs.get('timeout')
        now = time.monotonic()
        if isinstance(timeout, (int, float)) and not isinstance(timeout,
                                                                bool):
            deadline = now + timeout if deadline is None else min(
                deadline, now + timeout)
        if deadline is None:
            return super().send(request, **kwargs)
        if deadline <= now:
            raise _TimeUp()
        # Each socket operation waits at most the time left (the readers
        # and the connections shorten it as time passes).
        kwargs['timeout'] = deadline - now
        exchange = outer if outer is not None else _Exchange(deadline)
        saved = exchange.deadline
        exchange.deadline = deadline
        token = _EXCHANGE.set(exchange)
        try:
            response = super().send(request, **kwargs)
        finally:
            _EXCHANGE.reset(token)
            exchange.deadline = saved
        exchange.response = response
        return response


def _is_timeout(error):
    """True when ``error`` or one of its causes is a timeout.

    urllib3's NewConnectionError (refused, unreachable) derives from its
    ConnectTimeoutError: it is no timeout.
    """
    pending = [error]
    for _ in range(20):
        if not pending:
            break
        e = pending.pop()
        if isinstance(e, urllib3_exceptions.NewConnectionError):
            continue
        if isinstance(e, (_TimeUp, requests.Timeout, socket.timeout,
                          urllib3_exceptions.TimeoutError)):
            return True
        if isinstance(e, urllib3_exceptions.MaxRetryError) and e.reason:
            pending.append(e.reason)
        pending.extend(a for a in e.args[:1] if isinstance(a, BaseException))
        if e.__cause__ is not None:
            pending.append(e.__cause__)
    return False


# --------------------------------------------------------------------------
# The source
# --------------------------------------------------------------------------

class PrometheusSource(metrics.MetricSource):
    """Runs PromQL instant queries against one Prometheus server.

    One instance may be shared by threads (or green threads): each call
    carries its own time limit.

    :param conf: an oslo.config ``ConfigOpts`` with nova-kronos options
        registered (``[kronos_prometheus]`` is read).
    :raises MetricsError: an option is refused (:func:`check_options`:
        credentials in ``url``, ``username`` with ``bearer_token``, ...),
        or ``ca_file`` is set (and ``insecure`` is not) but is missing,
        unreadable or holds no PEM certificate. The message names the
        option and quotes no secret.
    """

    def __init__(self, conf):
        super().__init__(conf)
        opts = conf.kronos_prometheus
        problems = check_options(opts)
        if problems:
            raise metrics.MetricsError('; '.join(problems))
        self.url = shown_url(opts.url)
        #: Seconds one query (or one syntax check) may take in all.
        self.timeout = opts.timeout
        self._secrets = secrets_of(opts)
        if opts.ca_file and not opts.insecure:
            # requests only opens it at the first HTTPS request, and then
            # fails with an OSError, not a requests error.
            _check_ca_file(opts.ca_file)
        self._verify = False if opts.insecure else (opts.ca_file or True)
        session = _DeadlineSession()
        if opts.bearer_token:
            session.headers['Authorization'] = 'Bearer %s' % opts.bearer_token
        if opts.username:
            session.auth = (opts.username, opts.password or '')
        # Short, bounded retries: the weigher runs inside nova-scheduler and
        # must never hold a scheduling request for long.
        retry = _DeadlineRetry(
            total=opts.retries, connect=opts.retries, read=opts.retries,
            backoff_factor=0.1, status_forcelist=(502, 503, 504),
            allowed_methods=('GET',), raise_on_status=False)
        # verify is passed per request by the client (and by _get): a
        # session's own would lose to $REQUESTS_CA_BUNDLE.
        session.verify = self._verify
        self._session = session
        self._client = PrometheusConnect(
            url=self.url, session=session, retry=retry, timeout=self.timeout)
        # The client mounted a plain HTTPAdapter for our URL: ours instead.
        session.mount(self.url, _DeadlineAdapter(max_retries=retry))

    def _limit(self, deadline):
        """``(absolute deadline, seconds, what set it)`` of one call."""
        now = time.monotonic()
        if deadline is not None and deadline - now < self.timeout:
            return deadline, max(deadline - now, 0.0), "the caller's deadline"
        return now + self.timeout, self.timeout, '[kronos_prometheus] timeout'

    def _time_up(self, url, what, limit):
        _, seconds, by = limit
        return metrics.MetricsError(
            'Prometheus at %s did not answer within %s s (%s); %s'
            % (url, _seconds(seconds), by, what))

    def _unreachable(self, url, what, limit, error):
        """The MetricsError for a requests error: out of time, unreachable.

        requests' errors are OSErrors; so is a CA file gone since start-up.
        """
        if _is_timeout(error) or time.monotonic() >= limit[0]:
            return self._time_up(url, what, limit)
        return metrics.MetricsError('Prometheus at %s cannot be reached: %s'
                                    % (url, self._reason(error)))

    def query(self, promql, deadline=None):
        """Run one instant query.

        :param promql: PromQL text.
        :param deadline: optional :func:`time.monotonic` value the query
            must end by; it gets ``min([kronos_prometheus] timeout, time
            left)`` seconds (none when the deadline has passed).
        :returns: list of ``(labels dict, float value)``.
        :raises MetricsError: Prometheus cannot be reached, did not answer
            in time (``... did not answer within N s ...``), answered an
            HTTP error or something else than an instant vector.
        """
        url = self.url + _QUERY
        what = 'query %s' % _clip(repr(promql))
        limit = self._limit(deadline)
        if limit[1] <= 0:
            raise self._time_up(url, what, limit)
        with _exchange(limit[0]) as exchange:
            try:
                result = self._client.custom_query(promql)
            except _TimeUp:
                raise self._time_up(url, what, limit) from None
            except PrometheusApiClientException as e:
                # Its message holds the whole body: not chained.
                raise metrics.MetricsError(
                    'Prometheus at %s answered the %s with %s'
                    % (url, what, self._answer(exchange.response, e))
                ) from None
            except (ValueError, RecursionError) as e:
                # The body is not JSON (requests' JSONDecodeError keeps
                # it: not chained).
                if exchange.response is None:
                    raise metrics.MetricsError(
                        'Prometheus at %s cannot be asked the %s: %s'
                        % (url, what, self._quote(e))) from None
                raise metrics.MetricsError(
                    'Prometheus at %s answered HTTP 200 without a JSON '
                    'object (%s)'
                    % (url, self._not_quoted(exchange.response))) from None
            except OSError as e:
                raise self._unreachable(url, what, limit, e) from e
            except (KeyError, TypeError):
                body = _json_object(exchange.response)
                if body is not None and _is_error(body):
                    raise metrics.MetricsError(
                        'Prometheus at %s answered the %s with %s'
                        % (url, what, self._answer(exchange.response))
                    ) from None
                raise metrics.MetricsError(
                    'Prometheus at %s answered the %s without a '
                    'data.result list' % (url, what)) from None
        if not isinstance(result, list):
            raise metrics.MetricsError(
                'Prometheus at %s answered the %s without a '
                'data.result list' % (url, what))
        non_vector = metrics.MetricsError(
            'Prometheus at %s answered %s with a non-vector result; queries '
            'must return an instant vector' % (url, _clip(repr(promql))))
        samples = []
        for item in result:
            try:
                labels = item.get('metric', {})
                value = float(item['value'][1])
            except (AttributeError, KeyError, IndexError, TypeError,
                    ValueError) as e:
                raise non_vector from e
            if not isinstance(labels, dict):
                raise non_vector
            samples.append((labels, value))
        return samples

    def check_syntax(self, promql, deadline=None):
        """Ask Prometheus whether it can parse a query.

        ``/api/v1/format_query`` (Prometheus 2.38 and later) only parses;
        when the server answers 404 there the query is run as an instant
        query instead, where a parse error is ``errorType: bad_data``.
        ``[kronos_prometheus] timeout`` bounds both requests together.

        :param promql: PromQL text.
        :param deadline: optional :func:`time.monotonic` value to end by,
            as for :meth:`query`.
        :returns: None when Prometheus parses it, else its parse error on
            one line (e.g. ``1:13: parse error: unclosed left
            parenthesis``), redacted and cut at :data:`QUOTED_CHARS`
            characters.
        :raises MetricsError: Prometheus cannot be reached, did not answer
            in time, or answers something else than a verdict on the
            syntax.
        """
        limit = self._limit(deadline)
        what = 'syntax check of %s' % _clip(repr(promql))
        if limit[1] <= 0:
            raise self._time_up(self.url + _FORMAT_QUERY, what, limit)
        with _exchange(limit[0]):
            response, body = self._get(_FORMAT_QUERY, promql, what, limit)
            endpoint = _FORMAT_QUERY
            if response.status_code == 404:
                response, body = self._get(_QUERY, promql, what, limit)
                endpoint = _QUERY
        if response.status_code == 200 and body.get('status') == 'success':
            return None
        error_type = body.get('errorType')
        if error_type == 'bad_data':
            error = str(body.get('error', ''))
            if error.startswith(_PARAM_PREFIX):
                error = error[len(_PARAM_PREFIX):]
            return self._quote(error)
        if endpoint == _QUERY and error_type == 'execution':
            return None  # parsed, then failed while evaluating
        raise metrics.MetricsError(
            'Prometheus at %s gave no verdict on the syntax of %s: %s'
            % (self.url + endpoint, _clip(repr(promql)),
               self._answer(response)))

    def _get(self, endpoint, promql, what, limit):
        """GET ``endpoint?query=promql``: ``(response, JSON object)``.

        The object is ``{}`` when the body is not a JSON object.
        """
        url = self.url + endpoint
        try:
            # verify per request: a session's own would lose to
            # $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE.
            response = self._session.get(url, params={'query': promql},
                                         timeout=self.timeout,
                                         verify=self._verify)
        except _TimeUp:
            raise self._time_up(url, what, limit) from None
        except OSError as e:
            raise self._unreachable(url, what, limit, e) from e
        body = _json_object(response)
        if body is None:
            if response.status_code == 200:
                raise metrics.MetricsError(
                    'Prometheus at %s answered HTTP 200 without a JSON '
                    'object (%s)' % (url, self._not_quoted(response)))
            body = {}
        return response, body

    def _quote(self, text):
        return quote(text, self._secrets)

    def _answer(self, response, error=None):
        """An HTTP answer for a message: status, and what it says.

        errorType and error (redacted) from Prometheus' JSON error envelope
        only; of any other body, its content type and size.
        """
        if response is None:
            # Not seen (cannot happen through our session): the status
            # only, never the body the client's message holds.
            match = re.match(r'HTTP Status Code (\d+)', str(error or ''))
            return 'HTTP %s' % (match.group(1) if match else '?')
        body = _json_object(response)
        if body is not None and _is_error(body):
            kind = body.get('errorType')
            return 'HTTP %d%s: %s' % (
                response.status_code,
                ', %s' % self._quote(kind) if kind else '',
                self._quote(body.get('error', '')))
        return 'HTTP %d (%s)' % (response.status_code,
                                 self._not_quoted(response))

    def _not_quoted(self, response):
        """Content type and size of a body that is not quoted."""
        if response is None:
            return 'body not quoted'
        kind = response.headers.get('Content-Type')
        return '%s, %d bytes, not quoted' % (
            quote(kind, self._secrets, 60) if kind else 'no content type',
            len(response.content or b''))

    def _reason(self, error):
        """The cause of a requests error, without urllib3's retry wrapper.

        The wrapper's text repeats the whole URL, query included.
        """
        cause = error.args[0] if error.args else None
        if isinstance(cause, urllib3_exceptions.MaxRetryError) and \
                cause.reason is not None:
            return self._quote(cause.reason)
        return self._quote(error)


def _json_object(response):
    """The body of ``response`` as a JSON object, or None."""
    if response is None:
        return None
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


def _is_error(body):
    return 'error' in body or 'errorType' in body


def _seconds(value):
    """Seconds for a message: 3 significant digits, no trailing zeros."""
    if not math.isfinite(value):
        return str(value)
    return '%.3g' % value


def _check_ca_file(path):
    if os.path.isdir(path):
        return  # a directory of hashed certificates, which requests takes
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError as e:
        raise metrics.MetricsError(
            '[kronos_prometheus] ca_file: CA file %s does not exist'
            % path) from e
    except ssl.SSLError as e:
        raise metrics.MetricsError(
            '[kronos_prometheus] ca_file: CA file %s holds no PEM '
            'certificate (%s)' % (path, e.reason or e)) from e
    except OSError as e:
        raise metrics.MetricsError(
            '[kronos_prometheus] ca_file: cannot read CA file %s: %s'
            % (path, e.strerror or e)) from e


def _clip(text, limit=QUOTED_CHARS):
    return text_mod.one_line(text, limit)
