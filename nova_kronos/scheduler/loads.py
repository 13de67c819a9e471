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


"""Host loads for the weigher and filter: one cache per process.

nova-scheduler calls the filter and the weigher for every request. This
module fetches every enabled policy's ``host_query`` at most once per
``[kronos] weigher_cache_ttl`` seconds (counted from the end of a
successful fetch), within ``[kronos] fetch_timeout`` seconds in all, and
at most once per scheduling request: the filter and the weigher of one
request (every instance of a multi-create included) share one table even
with a TTL of 0.

Between two fetches, :class:`RecentPlacements` adds to the measured loads
the servers placed since: the growth of each host's allocated vCPUs and
RAM that nova-scheduler's ``HostState`` shows, kept for the policy's
settle time (``Policy.settle_seconds``), as the rebalancer overlays its
recent migrations. :func:`loads_after` also adds the request's own flavor,
so the filter, the weigher and the planner judge a host by the load it
would have after taking the server.

Nothing here raises into Nova: a missing or invalid policies file, an
unknown metric source, an unreachable or slow Prometheus or an invalid
option value gives ``None`` (callers then use neutral weights or the
configured fail-open/fail-closed answer) and at most one warning per
``[kronos] log_interval`` seconds per kind of trouble.
"""

import collections
import itertools
import math
import operator
import os
import threading
import time
import weakref

import numpy as np
from oslo_log import log as logging

from nova_kronos import conf as kronos_conf
from nova_kronos import metrics
from nova_kronos import policy as policy_mod
from nova_kronos.scheduler import settings as settings_mod

LOG = logging.getLogger(__name__)

#: Hosts named in a summarised warning about unusable samples.
WARN_HOSTS = 3
#: Scheduling requests whose table is remembered (concurrent requests).
REQUEST_MEMO = 64
#: Allocation changes remembered per host (older ones are dropped).
EVENTS_PER_HOST = 256
#: Seconds a weigher's reservation counts unless the host's allocations
#: grow first (a Placement claim takes well under a second).
RESERVATION_TIME = 10.0

# One C call per HostState for what loads_after reads.
_HOST_FIELDS = operator.attrgetter('host', 'vcpus_used', 'free_ram_mb',
                                   'vcpus_total', 'total_usable_ram_mb')


class LoadTable:
    """Measured loads of every known host for the enabled policies.

    :ivar policies: tuple of enabled :class:`nova_kronos.policy.Policy`.
    :ivar index: dict host -> row of :attr:`matrix`.
    :ivar matrix: array [H + 1, P]; the last row is all NaN (unknown host).
    :ivar settle: array [P]: seconds a placement is added to the loads.
    :ivar resources: tuple [P] of each policy's ``resource`` (or None).
    """

    def __init__(self, policies, per_policy, settle=None):
        self.policies = tuple(policies)
        hosts = set()
        for values in per_policy.values():
            hosts.update(values)
        names = sorted(hosts)
        self.index = {h: i for i, h in enumerate(names)}
        self.matrix = np.full((len(names) + 1, len(self.policies)), np.nan)
        for p, pol in enumerate(self.policies):
            for h, v in per_policy.get(pol.name, {}).items():
                self.matrix[self.index[h], p] = v
        self.missing = len(names)
        self.settle = np.array(settle if settle is not None
                               else [0.0] * len(self.policies), dtype=float)
        self.settle_key = tuple(self.settle.tolist())
        self.resources = tuple(p.resource for p in self.policies)
        self.modes = [p.mode for p in self.policies]
        self.weights = np.array([p.weight for p in self.policies])
        self.thresholds = np.array([p.threshold for p in self.policies])


class RecentPlacements:
    """Allocation changes seen on nova-scheduler's HostStates, and choices.

    nova-scheduler updates a HostState's ``vcpus_used`` and ``free_ram_mb``
    when it places a server (``HostState.consume_from_request``) and when
    the compute node reports; Prometheus shows the server's load only
    later. Each change seen is remembered with the time the host was last
    seen unchanged (the earliest the change can have happened) until the
    longest settle time has passed. A host not seen for longer than that is
    taken as it is, without remembering the change.

    nova-scheduler updates the HostState only after it has claimed the
    chosen host in Placement, an HTTP call during which concurrent requests
    are weighed. So the weigher also reserves (:meth:`reserve`) the
    request's flavor on the host it predicts Nova will choose; it counts at
    once, ends when an increase of that host's allocations is seen (which
    then counts instead) and lapses after :data:`RESERVATION_TIME` seconds
    (the prediction was wrong, or the claim failed).

    Memory: one entry per host, at most :data:`EVENTS_PER_HOST` changes
    and reservations each.
    """

    def __init__(self):
        #: Changes whenever what :meth:`pending` reports may have changed
        #: other than by time (a reservation, a change seen).
        self.generation = 0
        self._hosts = {}
        self._reserved = {}     # host -> deque of [time, vcpus, ram, key]
        self._reserved_by = {}  # key -> host
        self._lock = threading.Lock()

    def reserve(self, host, vcpus, ram_mb, key, now):
        """Count a server of the given size on ``host`` from ``now``.

        :param key: the request's identity (its instance UUID); a new
            reservation with the same key replaces the previous one.
        """
        with self._lock:
            self.generation += 1
            self._unreserve(key)
            queue = self._reserved.get(host)
            if queue is None:
                queue = self._reserved[host] = collections.deque(
                    maxlen=EVENTS_PER_HOST)
            if len(queue) == queue.maxlen:
                self._reserved_by.pop(queue[0][3], None)
            queue.append([now, vcpus, ram_mb, key])
            self._reserved_by[key] = host

    def _unreserve(self, key):
        host = self._reserved_by.pop(key, None)
        if host is None:
            return
        queue = self._reserved.get(host, ())
        for item in list(queue):
            if item[3] == key:
                queue.remove(item)
        self._drop_if_empty(host)

    def _drop_if_empty(self, host):
        # An empty queue is no entry: pending() takes the fast path.
        if host in self._reserved and not self._reserved[host]:
            del self._reserved[host]

    def _settle_reservations(self, host, vcpus, ram_mb, now):
        """An allocation change on ``host``: end the reservations it is."""
        queue = self._reserved.get(host)
        if not queue:
            return
        self._lapse(host, queue, now)
        for item in list(queue):
            if item[1] <= vcpus and item[2] <= ram_mb:
                vcpus -= item[1]
                ram_mb -= item[2]
                queue.remove(item)
                self._reserved_by.pop(item[3], None)
        self._drop_if_empty(host)

    def _lapse(self, host, queue, now):
        while queue and queue[0][0] < now - RESERVATION_TIME:
            self._reserved_by.pop(queue.popleft()[3], None)
            self.generation += 1

    def pending(self, fields, now, settle, own=None):
        """Record every host's allocations; what to add to their loads.

        :param fields: sequence [H] of ``(host, vcpus_used, free_ram_mb,
            vcpus_total, total_usable_ram_mb)`` of HostStates.
        :param now: monotonic seconds.
        :param settle: tuple [P] of each policy's settle time, seconds: a
            change counts for policy ``p`` while younger than
            ``settle[p]``.
        :param own: the key of the request asking, whose own reservation
            is left out (a retry of the same instance).
        :returns: ``(positions, vcpus, ram_mb)``: the indexes into
            ``fields`` of the hosts with something to add, and for each a
            tuple [P] of vCPUs and one of MiB to add per policy: changes
            (possibly negative: servers gone) and reservations younger
            than :data:`RESERVATION_TIME`.

        A host seen unchanged without reservations (nearly all, nearly
        always) costs a dict lookup and a tuple comparison, plus a cached
        sum when it has recent changes.
        """
        hosts, reserved = self._hosts, self._reserved
        positions, vcpus, ram = [], [], []
        for i, f in enumerate(fields):
            entry = hosts.get(f[0])
            if entry is not None and entry[0] == f and f[0] not in reserved:
                entry[1] = now
                if not entry[2]:
                    continue
                cached = entry[3]
                if cached is not None and cached[0] == settle and \
                        now < cached[1]:
                    positions.append(i)
                    vcpus.append(cached[2])
                    ram.append(cached[3])
                    continue
            sums = self._observe(f, now, settle, own)
            if sums is not None:
                positions.append(i)
                vcpus.append(sums[0])
                ram.append(sums[1])
        return positions, vcpus, ram

    def _observe(self, fields, now, settle, own):
        """One host, the slow way: record a change, sum what counts."""
        host = fields[0]
        horizon = max(settle) if settle else 0.0
        with self._lock:
            entry = self._hosts.get(host)
            if entry is None:
                self._hosts[host] = entry = [fields, now, None, None]
                self.generation += 1
            elif entry[0] != fields:
                self.generation += 1
                old = entry[0]
                dv, dram = fields[1] - old[1], old[2] - fields[2]
                if (dv or dram) and now - entry[1] <= horizon:
                    if entry[2] is None:
                        entry[2] = collections.deque(maxlen=EVENTS_PER_HOST)
                    entry[2].append((entry[1], dv, dram))
                    entry[3] = None
                if dv > 0 or dram > 0:
                    self._settle_reservations(host, dv, dram, now)
                entry[0] = fields
            entry[1] = now
            events, queue = entry[2], self._reserved.get(host)
            if not events and not queue:
                return None
            if events:
                if events[0][0] < now - horizon:
                    while events and events[0][0] < now - horizon:
                        events.popleft()
                    entry[3] = None
                if entry[3] is None or entry[3][0] != settle or \
                        now >= entry[3][1]:
                    entry[3] = _sum_events(events, now, settle)
                vcpus, ram = entry[3][2], entry[3][3]
            else:
                vcpus = ram = (0,) * len(settle)
            if queue:
                self._lapse(host, queue, now)
                self._drop_if_empty(host)
                mine = [(v, r) for _, v, r, key in queue if key != own]
                if mine:
                    v = sum(m[0] for m in mine)
                    r = sum(m[1] for m in mine)
                    vcpus = tuple(x + v for x in vcpus)
                    ram = tuple(x + r for x in ram)
            return vcpus, ram


def _sum_events(events, now, settle):
    """``(settle, valid until, vcpus [P], ram [P])`` of one host's changes.

    The sums hold until the first counted change gets older than its
    policy's settle time.
    """
    vcpus, ram, until = [], [], math.inf
    for s in settle:
        cutoff = now - s
        counted = [e for e in events if e[0] >= cutoff]
        vcpus.append(sum(e[1] for e in counted))
        ram.append(sum(e[2] for e in counted))
        if counted:
            until = min(until, counted[0][0] + s)
    return settle, until, tuple(vcpus), tuple(ram)


def request_key(spec_obj):
    """The identity a request's reservation is kept under."""
    try:
        if spec_obj.obj_attr_is_set('instance_uuid') and \
                spec_obj.instance_uuid:
            return spec_obj.instance_uuid
    except Exception:  # not a RequestSpec (tests, odd callers)
        pass
    return id(spec_obj)


def request_size(spec_obj):
    """``(vcpus, memory_mb)`` of the request's flavor; (0, 0) if unknown."""
    try:
        flavor = spec_obj.flavor
        return float(flavor.vcpus), float(flavor.memory_mb)
    except Exception:  # no flavor on the spec (tests, odd callers)
        return 0.0, 0.0


def loads_after(table, placements, host_states, spec_obj, now):
    """Loads each host would have after taking the request.

    Measured load, plus the recent placements of :class:`RecentPlacements`
    within each policy's settle time, plus the request's flavor. For a
    policy whose ``resource`` is ``vcpu`` (``memory_mb``), ``n`` vCPUs
    (MiB) added to host ``h`` add ``u * n / capacity[h]``: ``capacity`` is
    the HostState's ``vcpus_total`` (physical CPUs; ``total_usable_ram_mb``)
    and ``u`` is the load the candidates carry per allocated unit::

        u = sum_h load[h] * capacity[h] / sum_h allocated[h]

    over the candidates with data (``vcpus_used``; ``total_usable_ram_mb -
    free_ram_mb``), at most 1, and 1 (the flavor fully busy, Kubernetes'
    Trimaran prediction from a pod's request) while nothing is allocated.
    With 4 vCPUs allocated per physical CPU at a load of 0.3, u = 0.075: a
    new server is predicted as busy as the average allocated vCPU, not as a
    whole physical CPU per vCPU. A policy without ``resource`` adds
    nothing.

    :param table: :class:`LoadTable`.
    :param placements: :class:`RecentPlacements`.
    :param host_states: sequence [H] of nova ``HostState``.
    :param spec_obj: the request's ``RequestSpec``.
    :param now: monotonic seconds.
    :returns: ``(names [H], loads [P, H])``; NaN where a host has no
        measured load for a policy.
    """
    n = len(host_states)
    fields = list(map(_HOST_FIELDS, host_states))
    if not n:
        return [], np.zeros((len(table.policies), 0))
    names, vcpus_used, free_ram, vcpus_total, ram_total = zip(*fields)
    out = table.matrix[list(map(table.index.get, names, itertools.repeat(
        table.missing, n)))].T.copy()
    positions, vcpus, ram = placements.pending(
        fields, now, table.settle_key, request_key(spec_obj))
    req = request_size(spec_obj)
    arrays = None
    for p, resource in enumerate(table.resources):
        if resource == 'vcpu':
            col, added = 0, vcpus
        elif resource == 'memory_mb':
            col, added = 1, ram
        else:
            continue
        if arrays is None:
            # [capacity vcpu, capacity ram, used vcpu, used ram]
            arrays = np.array((vcpus_total, ram_total, vcpus_used, free_ram),
                              dtype=float)
            arrays[3] = arrays[1] - arrays[3]
        cap, used = arrays[col], arrays[col + 2]
        extra = np.full(n, req[col])
        if positions:
            extra[positions] += [a[p] for a in added]
        with np.errstate(divide='ignore', invalid='ignore'):
            out[p] += np.where(cap > 0, per_unit_load(out[p], cap, used)
                               * extra / cap, 0.0)
    return list(names), out


def per_unit_load(loads, capacity, used):
    """Load per allocated unit ``u`` (see :func:`loads_after`), in [0, 1].

    :param loads: array [H] of measured loads, NaN where unknown.
    :param capacity: array [H] of the hosts' sizes in the resource.
    :param used: array [H] of the units allocated on them.
    :returns: float.
    """
    known = ~np.isnan(loads) & (capacity > 0)
    allocated = used[known].sum()
    if allocated <= 0:
        return 1.0
    return float(min(1.0, max(0.0, (loads[known] * capacity[known]).sum()
                              / allocated)))


class HostLoadCache:
    """Fetches and caches a :class:`LoadTable` (thread-safe).

    :param conf: ConfigOpts with nova-kronos options registered.
    :param clock: monotonic clock, injectable for tests.
    :param source: a :class:`nova_kronos.metrics.MetricSource` to use
        instead of the one ``[kronos] metric_source`` names (tests).
    """

    def __init__(self, conf=None, clock=time.monotonic, source=None):
        self.conf = conf or kronos_conf.CONF
        self.clock = clock
        self._fixed_source = source
        self.placements = RecentPlacements()
        self._reader = settings_mod.SettingsReader(self.conf)
        self._settings = None
        self._lock = threading.Lock()
        self._memo_lock = threading.Lock()
        self._memo = collections.OrderedDict()
        self._after = collections.OrderedDict()
        self._table = None
        self._fetched = False
        self._valid_until = 0.0
        self._policy_set = None
        self._policy_key = None
        self._source = None
        self._source_key = None
        self._last_warning = {}

    @property
    def settings(self):
        """Validated options (see :mod:`nova_kronos.scheduler.settings`).

        Read at the first call and again before every fetch.
        """
        if self._settings is None:
            self._settings = self._reader.read()
        return self._settings

    def get(self, request=None):
        """Current :class:`LoadTable`, or None when loads are unavailable.

        :param request: the scheduling request's ``RequestSpec``: every call
            with the same object gets the same table, however the TTL
            goes, so the filter and the weigher of one request agree and
            fetch at most once between them.

        Only one caller fetches at a time; concurrent callers get the
        previous table (or None) instead of waiting on Prometheus. After a
        failed fetch the next attempt waits ``[kronos] failure_backoff``
        seconds (or the TTL, if longer), so an unreachable Prometheus
        delays at most one scheduling request per backoff period, by at
        most ``fetch_timeout``.
        """
        if request is not None:
            with self._memo_lock:
                hit = self._memo.get(id(request))
            if hit is not None and hit[0]() is request:
                return hit[1]
        table = self._current()
        # None (another request is fetching, or the fetch failed) is not
        # remembered: the weigher may find the table ready.
        if request is not None and table is not None:
            try:
                ref = weakref.ref(request)
            except TypeError:
                return table
            with self._memo_lock:
                self._memo[id(request)] = (ref, table)
                self._memo.move_to_end(id(request))
                while len(self._memo) > REQUEST_MEMO:
                    self._memo.popitem(last=False)
        return table

    def remember_after(self, request, table, hosts, after):
        """Keep the filter's loads after placement for the same request.

        :param hosts: the HostStates the filter passed, in order.
        :param after: array [P, len(hosts)] of their loads after.
        """
        try:
            ref = weakref.ref(request)
        except TypeError:
            return
        with self._memo_lock:
            self._after[id(request)] = (ref, table,
                                        self.placements.generation,
                                        hosts, after)
            self._after.move_to_end(id(request))
            while len(self._after) > REQUEST_MEMO:
                self._after.popitem(last=False)

    def recall_after(self, request, table, hosts):
        """The filter's loads after, if still right for these hosts.

        Right when they come from the same request and table, for the same
        HostStates in the same order (no filter after ours dropped one),
        and no reservation or allocation change was seen since.

        :returns: array [P, len(hosts)], or None.
        """
        with self._memo_lock:
            hit = self._after.get(id(request))
        if hit is None or hit[0]() is not request or hit[1] is not table \
                or hit[2] != self.placements.generation:
            return None
        kept = hit[3]
        if len(kept) != len(hosts) or any(
                a is not b for a, b in zip(kept, hosts)):
            return None
        return hit[4]

    def _current(self):
        if not self._lock.acquire(blocking=False):
            return self._table
        try:
            if self._fetched and self.clock() < self._valid_until:
                return self._table
            self._settings = self._reader.read()
            opts = self._settings.kronos
            self._table = self._fetch(opts)
            self._fetched = True
            ttl = opts.weigher_cache_ttl
            if self._table is None:
                ttl = max(ttl, opts.failure_backoff)
            # Counted from the end of the fetch: a slow fetch does not
            # shorten the time its result is used.
            self._valid_until = self.clock() + ttl
            return self._table
        finally:
            self._lock.release()

    def _fetch(self, opts):
        try:
            policy_set = self._policies(opts.policies_file)
            source = self._metric_source(opts.metric_source)
            scrape = self._settings.kronos_prometheus.scrape_interval
            settle = [p.settle_seconds(scrape) for p in policy_set.enabled]
            snap = source.collect(
                policy_set, vms=False,
                deadline=time.monotonic() + opts.fetch_timeout)
        except (policy_mod.PolicyError, metrics.MetricsError) as e:
            self._warn(type(e).__name__, 'kronos: host loads unavailable, '
                       'using neutral weights: %s', e)
            return None
        except Exception as e:  # never break scheduling
            self._warn('unexpected', 'kronos: unexpected error fetching host '
                       'loads, using neutral weights: %s', e)
            return None
        self._warn_samples(policy_set, snap)
        return LoadTable(policy_set.enabled,
                         {p: d.hosts for p, d in snap.data.items()}, settle)

    def _warn_samples(self, policy_set, snap):
        """One warning per fetch for every unusable or missing sample."""
        parts = []
        by_policy = collections.defaultdict(list)
        for e in snap.exclusions:
            if e.kind == 'host':
                by_policy[e.policy].append(e)
        for p in policy_set.enabled:
            found = len(snap.data[p.name].hosts) if p.name in snap.data else 0
            bad = by_policy.get(p.name, ())
            if not found and not bad:
                parts.append('%s: the host_query returned no sample' % p.name)
            elif bad:
                first = ', '.join('%s (%s)' % (e.name, e.reason)
                                  for e in bad[:WARN_HOSTS])
                parts.append('%s: %d host sample(s) unusable, e.g. %s%s' % (
                    p.name, len(bad), first,
                    '' if len(bad) <= WARN_HOSTS else ', ...'))
        if parts:
            self._warn('samples', 'kronos: %s; those hosts get neutral '
                       'weights', '; '.join(parts))

    def _policies(self, path):
        try:
            key = (path, os.stat(path).st_mtime_ns)
        except OSError:
            key = (path, None)
        if key != self._policy_key:
            self._policy_set = policy_mod.load_file(path)
            self._policy_key = key
        return self._policy_set

    def _metric_source(self, name):
        if self._fixed_source is not None:
            return self._fixed_source
        # Rebuilt when an option it reads changes (a config reload).
        key = (name, repr(self._settings.kronos_prometheus),
               self._settings.kronos.metrics_file)
        if self._source is None or key != self._source_key:
            self._source = metrics.load_source(name, self._settings)
            self._source_key = key
        return self._source

    def _warn(self, key, msg, *args):
        now = self.clock()
        last = self._last_warning.get(key)
        interval = self.settings.kronos.log_interval
        if last is None or now - last >= interval:
            self._last_warning[key] = now
            LOG.warning(msg, *args)


_CACHE = None
_CACHE_LOCK = threading.Lock()


def shared_cache():
    """The process-wide cache the weigher and the filter share."""
    global _CACHE
    cache = _CACHE
    if cache is not None:
        return cache
    with _CACHE_LOCK:
        if _CACHE is None:
            _CACHE = HostLoadCache()
        return _CACHE


def reset_shared_cache():
    """Forget the shared cache (tests; a config reload)."""
    global _CACHE
    with _CACHE_LOCK:
        _CACHE = None
