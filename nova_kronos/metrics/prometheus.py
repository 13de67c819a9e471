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

Every failure is a :class:`~nova_kronos.metrics.MetricsError` whose message
is one line naming the URL: Prometheus unreachable, an HTTP error, an
answer that is not the API's JSON envelope (``custom_query`` lets
``KeyError``/``TypeError``/``ValueError`` out for a body without
``data.result``), a result that is not an instant vector. Text copied from
the server is cut at :data:`QUOTED_CHARS` characters (the client's own
error message carries the whole body).
"""

import ast
import json
import os
import re
import ssl
import types

from prometheus_api_client import PrometheusApiClientException
from prometheus_api_client import PrometheusConnect
import requests
from urllib3 import exceptions as urllib3_exceptions
from urllib3.util import retry as urllib3_retry

from nova_kronos import metrics
from nova_kronos import text as text_mod

#: Characters of an answer (or an error) from the server quoted in a
#: MetricsError.
QUOTED_CHARS = 200

_QUERY = '/api/v1/query'
_FORMAT_QUERY = '/api/v1/format_query'
# Prometheus' prefix to the parse error of the "query" parameter.
_PARAM_PREFIX = 'invalid parameter "query": '


class PrometheusSource(metrics.MetricSource):
    """Runs PromQL instant queries against one Prometheus server.

    :param conf: an oslo.config ``ConfigOpts`` with nova-kronos options
        registered (``[kronos_prometheus]`` is read).
    :raises MetricsError: ``ca_file`` is set (and ``insecure`` is not) but
        is missing, unreadable or holds no PEM certificate.
    """

    def __init__(self, conf):
        super().__init__(conf)
        opts = conf.kronos_prometheus
        self.url = opts.url.rstrip('/')
        self.timeout = opts.timeout
        if opts.ca_file and not opts.insecure:
            # requests only opens it at the first HTTPS request, and then
            # fails with an OSError, not a requests error.
            _check_ca_file(opts.ca_file)
        self._verify = False if opts.insecure else (opts.ca_file or True)
        session = requests.Session()
        if opts.bearer_token:
            session.headers['Authorization'] = 'Bearer %s' % opts.bearer_token
        if opts.username:
            session.auth = (opts.username, opts.password or '')
        # Short, bounded retries: the weigher runs inside nova-scheduler and
        # must never hold a scheduling request for long.
        retry = urllib3_retry.Retry(
            total=opts.retries, connect=opts.retries, read=opts.retries,
            backoff_factor=0.1, status_forcelist=(502, 503, 504),
            allowed_methods=('GET',), raise_on_status=False)
        # verify is passed per request by the client (and by _get): a
        # session's own would lose to $REQUESTS_CA_BUNDLE.
        session.verify = self._verify
        self._session = session
        self._client = PrometheusConnect(
            url=self.url, session=session, retry=retry, timeout=self.timeout)

    def query(self, promql):
        url = self.url + _QUERY
        try:
            result = self._client.custom_query(promql)
        except PrometheusApiClientException as e:
            raise metrics.MetricsError(
                'Prometheus at %s answered the query %s with %s'
                % (url, _clip(repr(promql)), _client_error(e))) from e
        except (ValueError, RecursionError) as e:
            # The body is not JSON (requests' JSONDecodeError keeps it).
            raise metrics.MetricsError(
                'Prometheus at %s answered HTTP 200 without a JSON object: %s'
                % (url, _clip(getattr(e, 'doc', None) or repr(e)))) from e
        except OSError as e:
            # requests' errors are OSErrors; so is a CA file gone since
            # start-up.
            raise metrics.MetricsError(
                'Prometheus at %s cannot be reached: %s'
                % (url, _reason(e))) from e
        except (KeyError, TypeError) as e:
            raise metrics.MetricsError(
                'Prometheus at %s answered the query %s without a '
                'data.result list' % (url, _clip(repr(promql)))) from e
        if not isinstance(result, list):
            raise metrics.MetricsError(
                'Prometheus at %s answered the query %s without a '
                'data.result list' % (url, _clip(repr(promql))))
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

    def check_syntax(self, promql):
        """Ask Prometheus whether it can parse a query.

        ``/api/v1/format_query`` (Prometheus 2.38 and later) only parses;
        when the server answers 404 there the query is run as an instant
        query instead, where a parse error is ``errorType: bad_data``.

        :param promql: PromQL text.
        :returns: None when Prometheus parses it, else its parse error on
            one line (e.g. ``1:13: parse error: unclosed left
            parenthesis``), cut at :data:`QUOTED_CHARS` characters.
        :raises MetricsError: Prometheus cannot be reached or answers
            something else than a verdict on the syntax.
        """
        response, body = self._get(_FORMAT_QUERY, promql)
        endpoint = _FORMAT_QUERY
        if response.status_code == 404:
            response, body = self._get(_QUERY, promql)
            endpoint = _QUERY
        if response.status_code == 200 and body.get('status') == 'success':
            return None
        error_type = body.get('errorType')
        if error_type == 'bad_data':
            error = str(body.get('error', ''))
            if error.startswith(_PARAM_PREFIX):
                error = error[len(_PARAM_PREFIX):]
            return _clip(error)
        if endpoint == _QUERY and error_type == 'execution':
            return None  # parsed, then failed while evaluating
        raise metrics.MetricsError(
            'Prometheus at %s gave no verdict on the syntax of %s: %s'
            % (self.url + endpoint, _clip(repr(promql)),
               _api_error(response, body)))

    def _get(self, endpoint, promql):
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
        except OSError as e:
            # requests' errors are OSErrors; so is a CA file gone since
            # start-up.
            raise metrics.MetricsError(
                'Prometheus at %s cannot be reached: %s'
                % (url, _reason(e))) from e
        try:
            body = response.json()
        except (ValueError, RecursionError):
            body = None
        if not isinstance(body, dict):
            if response.status_code == 200:
                raise metrics.MetricsError(
                    'Prometheus at %s answered HTTP 200 without a JSON '
                    'object: %s' % (url, _clip(response.text)))
            body = {}
        return response, body


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


def _api_error(response, body):
    """What went wrong, from Prometheus' error envelope or the raw body."""
    if 'error' in body or 'errorType' in body:
        kind = body.get('errorType')
        return 'HTTP %d%s: %s' % (response.status_code,
                                  ', %s' % _clip(str(kind)) if kind else '',
                                  _clip(str(body.get('error', ''))))
    return 'HTTP %d: %s' % (response.status_code, _clip(response.text))


def _client_error(error):
    """HTTP status and Prometheus' error out of the client's exception.

    prometheus-api-client raises ``HTTP Status Code <code> (<repr of the
    body bytes>)``; the body is read back to quote only its error.
    """
    match = re.match(r'HTTP Status Code (\d+) \((b(["\']).*\3)\)$',
                     str(error), re.S)
    if match is None:
        return _clip(str(error))
    try:
        content = ast.literal_eval(match.group(2))
        text = content.decode('utf-8', 'replace')
    except (ValueError, SyntaxError, AttributeError):
        return _clip(str(error))
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        body = None
    response = types.SimpleNamespace(status_code=int(match.group(1)),
                                     text=text)
    return _api_error(response, body if isinstance(body, dict) else {})


def _reason(error):
    """The cause of a requests error, without urllib3's retry wrapper.

    The wrapper's text repeats the whole URL, query included.
    """
    cause = error.args[0] if error.args else None
    if isinstance(cause, urllib3_exceptions.MaxRetryError) and \
            cause.reason is not None:
        return _clip(str(cause.reason))
    return _clip(str(error))


def _clip(text, limit=QUOTED_CHARS):
    return text_mod.one_line(text, limit)
