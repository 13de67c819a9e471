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

"""Time loading synthetic clouds into the tests' real Prometheus.

For each size: generate the series, remote-write them
(tests/harness/prometheus.py), then wait until an instant query at ``now``
counts every series.  Prints one line per run; needs the ``prometheus``
binary (or ``$KRONOS_PROMETHEUS_BIN``) and the test requirements::

    python tools/benchmark_prometheus_load.py --sizes 12x300,50x5000
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from tests.harness import prometheus  # noqa: E402
from tests.harness import synthetic  # noqa: E402

GiB = 1 << 30


def make_cloud(hosts, vms):
    """``hosts`` hypervisors (16-64 cpus), ``vms`` VMs spread round-robin.

    Per-VM load shrinks with density so that no host is overcommitted.
    """
    per_host = max(1, -(-vms // hosts))
    busy = min(0.01, 8.0 / 18 / per_host)     # at most ~8 busy cores/host
    rss = min(GiB, 96 * GiB // (per_host * 5 // 2))
    return synthetic.round_robin_cloud(hosts, vms, busy_unit=busy,
                                       rss_unit=rss)


def count_series(server, now):
    resp = server._session.get(
        server.url + '/api/v1/query', timeout=60,
        params={'query': 'count({__name__=~".+"})', 'time': now})
    resp.raise_for_status()
    result = resp.json()['data']['result']
    return int(result[0]['value'][1]) if result else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', default='4x6,12x300,50x5000',
                        help='comma-separated HOSTSxVMS '
                             '(default: %(default)s)')
    parser.add_argument('--repeat', type=int, default=1)
    args = parser.parse_args()
    binary = prometheus.find_prometheus_binary()
    if binary is None:
        sys.exit('prometheus binary not found (set $%s)'
                 % prometheus.ENV_BINARY)
    server = prometheus.PrometheusServer(binary)
    server.start()
    try:
        for size in args.sizes.split(','):
            hosts, vms = (int(n) for n in size.split('x'))
            cloud = make_cloud(hosts, vms)
            for _ in range(max(1, min(args.repeat, 10))):
                server.reset()
                now = int(time.time())
                start = time.perf_counter()
                series = list(cloud.series(now))
                generated = time.perf_counter()
                server.remote_write(series)
                got = count_series(server, now)
                done = time.perf_counter()
                if got != len(series):
                    sys.exit('%s: %d series queryable, %d written'
                             % (size, got, len(series)))
                print('%-8s series=%6d samples=%7d generate=%.3fs '
                      'load->queryable=%.3fs'
                      % (size, len(series), sum(len(s) for _, s in series),
                         generated - start, done - generated), flush=True)
    finally:
        server.stop()


if __name__ == '__main__':
    main()
