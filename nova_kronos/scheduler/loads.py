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


"""Host loads for the weigher and filter, cached once per process.

nova-scheduler calls the weigher and the filter for every request; this
module fetches every enabled policy's ``host_query`` at most once per
``[kronos] weigher_cache_ttl`` seconds and shares the result between them.
It never raises: a missing or invalid policies file, an unknown metric
source or an unreachable Prometheus yields ``None`` (callers then give a
neutral weight or the configured fail-open/fail-closed answer) and a
warning at most once per ``[kronos] log_interval`` seconds.
"""

import os
import threading
import time

import numpy as np
from oslo_log import log as logging

from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos import policy as policy_mod

LOG = logging.getLogger(__name__)


class LoadTable:
    """Loads of every known host for the enabled policies.

    :ivar policies: tuple of enabled :class:`nova_kronos.policy.Policy`.
    :ivar loads: dict host -> float array [P] (NaN where a policy has no
        sample for the host).
    """

    def __init__(self, policies, per_policy):
        self.policies = policies
        hosts = set()
        for values in per_policy.values():
            hosts.update(values)
        self.loads = {}
        for h in hosts:
            self.loads[h] = np.array(
                [per_policy[p.name].get(h, np.nan) for p in policies])

    def for_hosts(self, names):
        """Array [P, len(names)] of loads, NaN for unknown hosts."""
        nan = np.full(len(self.policies), np.nan)
        return np.array([self.loads.get(n, nan) for n in names]).T.reshape(
            len(self.policies), len(names))


class HostLoadCache:
    """Fetches and caches a :class:`LoadTable` (thread-safe).

    :param conf: ConfigOpts with nova-kronos options registered.
    :param clock: monotonic clock, injectable for tests.
    """

    def __init__(self, conf=None, clock=time.monotonic):
        self.conf = conf or kronos_conf.CONF
        self.clock = clock
        self._lock = threading.Lock()
        self._table = None
        self._fetched_at = None
        self._valid_until = 0.0
        self._policy_set = None
        self._policy_key = None
        self._source = None
        self._source_name = None
        self._last_warning = {}

    def get(self):
        """Current :class:`LoadTable`, or None when loads are unavailable.

        Only one caller fetches at a time; concurrent callers get the
        previous table (or None) instead of waiting on Prometheus. After a
        failed fetch the next attempt waits ``[kronos] failure_backoff``
        seconds (or the TTL, if longer), so an unreachable Prometheus
        delays at most one scheduling request per backoff period.
        """
        if not self._lock.acquire(blocking=False):
            return self._table
        try:
            now = self.clock()
            if self._fetched_at is not None and now < self._valid_until:
                return self._table
            self._table = self._fetch()
            self._fetched_at = now
            ttl = self.conf.kronos.weigher_cache_ttl
            if self._table is None:
                ttl = max(ttl, self.conf.kronos.failure_backoff)
            self._valid_until = now + ttl
            return self._table
        finally:
            self._lock.release()

    def _fetch(self):
        try:
            policy_set = self._policies()
            source = self._metric_source()
            snap = source.collect(policy_set, vms=False)
        except (policy_mod.PolicyError, metrics.MetricsError) as e:
            self._warn(type(e).__name__, 'kronos: host loads unavailable, '
                       'using neutral weights: %s', e)
            return None
        except Exception as e:  # never break scheduling
            self._warn('unexpected', 'kronos: unexpected error fetching host '
                       'loads, using neutral weights: %s', e)
            return None
        for e in snap.exclusions:
            self._warn('exclusion:%s:%s' % (e.policy, e.name),
                       'kronos: policy %s excludes %s %s: %s',
                       e.policy, e.kind, e.name, e.reason)
        return LoadTable(policy_set.enabled,
                         {p: d.hosts for p, d in snap.data.items()})

    def _policies(self):
        path = self.conf.kronos.policies_file
        try:
            key = (path, os.stat(path).st_mtime_ns)
        except OSError:
            key = (path, None)
        if key != self._policy_key:
            self._policy_set = policy_mod.load_file(path)
            self._policy_key = key
        return self._policy_set

    def _metric_source(self):
        name = self.conf.kronos.metric_source
        if self._source is None or name != self._source_name:
            self._source = metrics.load_source(name, self.conf)
            self._source_name = name
        return self._source

    def _warn(self, key, msg, *args):
        now = self.clock()
        last = self._last_warning.get(key)
        if last is None or now - last >= self.conf.kronos.log_interval:
            self._last_warning[key] = now
            LOG.warning(msg, *args)


_CACHE = None
_CACHE_LOCK = threading.Lock()


def shared_cache():
    """The process-wide cache the weigher and the filter share."""
    global _CACHE
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = HostLoadCache()
        return _CACHE


def reset_shared_cache():
    """Forget the shared cache (tests; a config reload)."""
    global _CACHE
    with _CACHE_LOCK:
        _CACHE = None
