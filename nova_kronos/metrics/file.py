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


"""File-backed metric source: serves recorded query results from JSON.

For demos without a Prometheus binary, for replaying a recorded snapshot,
and for tests. The file maps each PromQL query text to the samples it
returns::

    {"queries": {"<promql>": [{"labels": {"nodename": "host1"},
                               "value": 0.42}, ...]}}

A query absent from the file raises :class:`~nova_kronos.metrics.MetricsError`,
as an unreachable Prometheus would.
"""

import json

from nova_kronos import metrics


class FileSource(metrics.MetricSource):
    """Answers queries from ``[kronos] metrics_file`` (or ``path``)."""

    def __init__(self, conf=None, path=None):
        super().__init__(conf)
        self.path = path or (conf.kronos.metrics_file if conf else None)
        if not self.path:
            raise metrics.MetricsError(
                'the "file" metric source needs [kronos] metrics_file')

    def _load(self):
        try:
            with open(self.path, encoding='utf-8') as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise metrics.MetricsError('cannot read metrics file %s: %s'
                                       % (self.path, e)) from e
        queries = doc.get('queries') if isinstance(doc, dict) else None
        if not isinstance(queries, dict):
            raise metrics.MetricsError('%s: expected {"queries": {...}}'
                                       % self.path)
        return queries

    def query(self, promql, deadline=None):
        """Samples recorded for ``promql``; ``deadline`` is ignored.

        :raises MetricsError: unreadable file, or no recorded result.
        """
        # Re-read each time: a test or demo rewrites the file between runs.
        queries = self._load()
        if promql not in queries:
            raise metrics.MetricsError('%s has no recorded result for query '
                                       '%r' % (self.path, promql))
        try:
            return [(dict(s['labels']), float(s['value']))
                    for s in queries[promql]]
        except (KeyError, TypeError, ValueError) as e:
            raise metrics.MetricsError('%s: bad sample for query %r: %s'
                                       % (self.path, promql, e)) from e


def write(path, results):
    """Write a snapshot file.

    :param results: dict PromQL text -> list of ``(labels dict, value)``.
    """
    doc = {'queries': {q: [{'labels': dict(lbl), 'value': float(v)}
                           for lbl, v in samples]
                       for q, samples in results.items()}}
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(doc, f, indent=1, sort_keys=True)
