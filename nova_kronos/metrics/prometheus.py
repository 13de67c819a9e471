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

Each PromQL query is one instant query (``/api/v1/query``); connection,
TLS, authentication, timeout and retries come from ``[kronos_prometheus]``.
"""

from prometheus_api_client import PrometheusApiClientException
from prometheus_api_client import PrometheusConnect
import requests
from urllib3.util import retry as urllib3_retry

from nova_kronos import metrics


class PrometheusSource(metrics.MetricSource):
    """Runs PromQL instant queries against one Prometheus server.

    :param conf: an oslo.config ``ConfigOpts`` with nova-kronos options
        registered (``[kronos_prometheus]`` is read).
    """

    def __init__(self, conf):
        super().__init__(conf)
        opts = conf.kronos_prometheus
        self.url = opts.url.rstrip('/')
        self.timeout = opts.timeout
        session = requests.Session()
        session.verify = (False if opts.insecure
                          else (opts.ca_file or True))
        headers = {}
        if opts.bearer_token:
            headers['Authorization'] = 'Bearer %s' % opts.bearer_token
        auth = None
        if opts.username:
            auth = (opts.username, opts.password or '')
        # Short, bounded retries: the weigher runs inside nova-scheduler and
        # must never hold a scheduling request for long.
        retry = urllib3_retry.Retry(
            total=opts.retries, connect=opts.retries, read=opts.retries,
            backoff_factor=0.1, status_forcelist=(502, 503, 504),
            allowed_methods=('GET',), raise_on_status=False)
        self._client = PrometheusConnect(
            url=self.url, headers=headers or None, auth=auth,
            session=session, retry=retry, timeout=self.timeout)

    def query(self, promql):
        try:
            result = self._client.custom_query(promql)
        except PrometheusApiClientException as e:
            raise metrics.MetricsError(
                'Prometheus at %s rejected the query %r: %s'
                % (self.url, promql, e)) from e
        except (requests.RequestException, ValueError) as e:
            raise metrics.MetricsError(
                'Prometheus at %s is unreachable or answered badly: %s'
                % (self.url, e)) from e
        samples = []
        for item in result:
            try:
                value = float(item['value'][1])
            except (KeyError, IndexError, TypeError, ValueError) as e:
                raise metrics.MetricsError(
                    'Prometheus at %s answered %r with a non-vector result; '
                    'queries must return an instant vector'
                    % (self.url, promql)) from e
            samples.append((item.get('metric', {}), value))
        return samples
