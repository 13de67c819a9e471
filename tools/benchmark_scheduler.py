#!/usr/bin/env python3
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

"""Time what the kronos filter and weigher add to a Nova scheduling request.

Usage (needs Nova, the test requirements and the ``prometheus`` binary, or
``$KRONOS_PROMETHEUS_BIN``)::

    python tools/benchmark_scheduler.py --hosts 1000
    python tools/benchmark_scheduler.py --hosts 100 --json
    python tools/benchmark_scheduler.py --hosts 5000 --cpus 4 -n 50
    python tools/benchmark_scheduler.py --hosts 1000 --profile 100

(from the repository root, with Nova installed, e.g. ``PYTHONPATH=.
.tox/functional/bin/python tools/...``). A default run at 1000 hosts takes
about 70-90 s on two cores.

A request is what nova-scheduler does per instance once Placement has
answered: ``HostFilterHandler().get_filtered_objects(filters, hosts, spec,
index=0)`` then ``HostWeightHandler().get_weighed_objects(weighers, passed,
spec)``, on ``FakeHostState`` hosts (64 vCPUs, 256 GiB, in one or two
aggregates, some with ``kronos_weight_multiplier``) and a 2 vCPU / 4 GiB
``RequestSpec`` (a new one, with its own instance UUID, per request; the
chosen host's ``HostState`` is consumed, as nova-scheduler does after its
Placement claim). The baseline runs Nova's
default ``enabled_filters`` and ``all_weighers()``; "with kronos" adds
``PrometheusFilter`` and ``PrometheusWeigher``. Baseline and kronos
requests alternate (ABBA), so drift hits both alike. Requests run back to
back, one at a time: the most a single scheduler worker can send, so
whatever kronos keeps per recent request is at its largest.

Loads come from a real Prometheus on 127.0.0.1 (tests/harness/
prometheus.py) holding synthetic node_exporter series of every host
(tests/harness/synthetic.py, no VMs; the ``node_uname_info`` nodename is
the FakeHostState's host name) and are read through the enabled policies
of etc/nova-kronos/policies.yaml.sample, as the functional tests do. Most
hosts are below the thresholds; one in 50 is above the cpu threshold, so
the filter has something to reject.

Prometheus' time for the cpu host_query grows with the
``node_cpu_seconds_total`` series it reads: 2 per cpu here (``--cpus``,
default 16), 8 or so per cpu from a real node_exporter. So the cold and
first-request rows are lower bounds for big hosts: with ``--cpus 64`` at
1000 hosts that query alone takes about 2 s on two cores. The header gives
each host_query's time measured directly.

What the rows mean (ms per request; median and p95 over the requests):

* warm (``[kronos] weigher_cache_ttl = 30``, loads cached): the whole
  request without and with kronos, and "kronos adds" = median(with) -
  median(baseline) (p95 likewise). The cache is refilled, untimed, before
  it can expire, so every timed request is a cache hit. Then our filter and
  our weigher each alone in Nova's handler, next to a no-op filter (yields
  every host) and a no-op weigher (constant weights, fixed minval/maxval):
  "adds" is ours minus the no-op, i.e. our code and the Nova helpers it
  calls (``get_weight_multiplier`` per host), without the handler's own
  per-filter/per-weigher cost.
* cold (``weigher_cache_ttl = 0``): every request fetches; includes the
  PromQL round trips and Prometheus' evaluation time.
* first request: the cache empty (``reset_shared_cache()``): policies file
  parsed, metric source built, loads fetched; "in-process" after a reset in
  this process, "fresh process" in a new Python process that has imported
  and built everything nova-scheduler would, but sent no request yet
  (lazy imports included). Both minus the baseline request.
* queries/request: ``prometheus_http_requests_total{handler=
  "/api/v1/query"}`` read from the server's /metrics before and after.
* kronos warnings: WARNINGs logged by nova_kronos in that phase (a fetch
  that failed or timed out). Such a row timed requests that, at least in
  part, had no loads (neutral weights): not the working path.

``--json`` also gives, per comparison, the median and p95 of the paired
(ABBA) differences, which are less noisy than the difference of medians.

Nova runs with native threads, as nova/cmd/scheduler.py runs
nova-scheduler by default; set ``OS_NOVA_DISABLE_EVENTLET_PATCHING=0`` to
run under eventlet instead. Progress goes to stderr; the table (or
``--json``) to stdout.
"""

import os
import sys

# Before anything imports Nova (see nova/monkey_patch.py).
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

import argparse  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import nova  # noqa: E402
from nova import objects  # noqa: E402
from nova.scheduler import filters as nova_filters  # noqa: E402
from nova.scheduler import weights as nova_weights  # noqa: E402
from nova.tests.unit.scheduler import fakes as nova_fakes  # noqa: E402
from oslo_utils import timeutils  # noqa: E402
from oslo_utils import uuidutils  # noqa: E402
import prettytable  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

from nova_kronos import conf as kronos_conf  # noqa: E402
from nova_kronos.scheduler import filters as kronos_filters  # noqa: E402
from nova_kronos.scheduler import loads  # noqa: E402
from nova_kronos.scheduler import weights as kronos_weights  # noqa: E402
from tests.harness import prometheus  # noqa: E402
from tests.harness import synthetic  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_POLICIES = os.path.join(ROOT, 'etc', 'nova-kronos',
                               'policies.yaml.sample')
CONF = kronos_conf.CONF     # Nova's global CONF
RAM_MB = 262144
VCPUS = 64
#: One host in this many is loaded above the sample cpu threshold.
OVERLOADED_EVERY = 50
WARM_TTL = 30.0
#: Seconds of exact rate() data written ahead of the start: a run must end
#: before this (raise with --horizon for long runs).
DEFAULT_HORIZON = 1200


def log(msg, *args):
    print(msg % args if args else msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# The fleet and the request
# --------------------------------------------------------------------------

def host_loads(n_hosts, seed):
    """``[(name, cpu_load, memory_load)]``, seeded.

    Loads stay clear of the sample thresholds (0.85 cpu, 0.9 memory) except
    for every ``OVERLOADED_EVERY``-th host, whose cpu load is 0.95.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n_hosts):
        cpu = rng.uniform(0.05, 0.80)
        if i % OVERLOADED_EVERY == OVERLOADED_EVERY - 1:
            cpu = 0.95
        out.append(('cn%04d' % i, round(cpu, 4),
                    round(rng.uniform(0.10, 0.85), 4)))
    return out


def make_hosts(fleet):
    """``FakeHostState`` objects mirroring ``fleet``'s loads."""
    now = timeutils.utcnow()
    az = objects.Aggregate(id=1, name='az1', hosts=[],
                           metadata={'availability_zone': 'az1'})
    gold = objects.Aggregate(id=2, name='gold', hosts=[],
                             metadata={'kronos_weight_multiplier': '2.0',
                                       'cpu_weight_multiplier': '2.0'})
    batch = objects.Aggregate(id=3, name='batch', hosts=[],
                              metadata={'kronos_weight_multiplier': '0.5',
                                        'ssd': 'true'})
    hosts = []
    for i, (name, cpu, mem) in enumerate(fleet):
        aggs = [az]
        if i % 4 == 0:
            aggs.append(gold)
        elif i % 7 == 0:
            aggs.append(batch)
        az.hosts.append(name)
        vcpus_used = int(cpu * VCPUS * 1.5)
        used_mb = int(mem * RAM_MB) // 1024 * 1024
        hosts.append(nova_fakes.FakeHostState(name, name, {
            'vcpus_total': VCPUS,
            'vcpus_used': vcpus_used,
            'cpu_allocation_ratio': 4.0,
            'total_usable_ram_mb': RAM_MB,
            'free_ram_mb': RAM_MB - used_mb,
            'ram_allocation_ratio': 1.0,
            'total_usable_disk_gb': 3600,
            'free_disk_mb': (3600 - 20 * (vcpus_used // 2)) * 1024,
            'disk_allocation_ratio': 1.0,
            'num_instances': vcpus_used // 2,
            'num_io_ops': i % 5,
            'hypervisor_type': 'QEMU',
            'hypervisor_version': (8002000, 9002000)[i % 2],
            'supported_instances': [('x86_64', 'kvm', 'hvm')],
            'aggregates': aggs,
            # ComputeFilter asks the servicegroup API (DB driver), which
            # only reads these fields.
            'service': {'host': name, 'binary': 'nova-compute',
                        'disabled': False, 'created_at': now,
                        'last_seen_up': now},
        }))
    return hosts


def make_spec():
    """A new request: its own instance UUID, as every Nova request has."""
    return objects.RequestSpec(
        flavor=objects.Flavor(vcpus=2, memory_mb=4096, root_gb=20,
                              ephemeral_gb=0, swap=0, extra_specs={}),
        num_instances=1,
        image=objects.ImageMeta.from_dict({'properties': {}}),
        scheduler_hints={},
        instance_group=None,
        instance_uuid=uuidutils.generate_uuid(),
        project_id='0123456789abcdef0123456789abcdef',
        user_id='fedcba9876543210fedcba9876543210',
        availability_zone=None,
        pci_requests=objects.InstancePCIRequests(requests=[]),
        ignore_hosts=None, force_hosts=None, force_nodes=None)


class NoopFilter(nova_filters.BaseHostFilter):
    """The cheapest filter the handler can run: every host passes."""

    RUN_ON_REBUILD = False

    def filter_all(self, filter_obj_list, spec_obj):
        yield from filter_obj_list


class NoopWeigher(nova_weights.BaseHostWeigher):
    """The cheapest weigher the handler can run: one constant weight."""

    minval = 0.0
    maxval = 1.0

    def weigh_objects(self, weighed_obj_list, weight_properties):
        return [0.5] * len(weighed_obj_list)

    def _weigh_object(self, host_state, weight_properties):
        return 0.5


class Scheduler:
    """Nova's handlers with a given set of filters and weighers."""

    def __init__(self):
        # Hosts must not look dead however long the run takes.
        CONF.set_override('service_down_time', 10 ** 7)
        self.filter_handler = nova_filters.HostFilterHandler()
        self.weight_handler = nova_weights.HostWeightHandler()
        by_name = {cls.__name__: cls for cls in
                   self.filter_handler.get_matching_classes(
                       ['nova.scheduler.filters.all_filters'])}
        self.nova_filter_names = list(CONF.filter_scheduler.enabled_filters)
        self.nova_filters = [by_name[n]() for n in self.nova_filter_names]
        self.nova_weighers = [cls() for cls in nova_weights.all_weighers()]
        self.kronos_filter = kronos_filters.PrometheusFilter()
        self.kronos_weigher = kronos_weights.PrometheusWeigher()
        self.baseline = (self.nova_filters, self.nova_weighers)
        self.with_kronos = (self.nova_filters + [self.kronos_filter],
                            self.nova_weighers + [self.kronos_weigher])

    def request(self, chain, hosts, spec):
        filters, weighers = chain
        passed = self.filter_handler.get_filtered_objects(
            filters, hosts, spec, index=0)
        return _consume(list(self.weight_handler.get_weighed_objects(
            weighers, passed, spec)), spec)

    def filter_only(self, flt, hosts, spec):
        return self.filter_handler.get_filtered_objects(
            [flt], hosts, spec, index=0)

    def weigh_only(self, weigher, hosts, spec):
        return _consume(list(self.weight_handler.get_weighed_objects(
            [weigher], hosts, spec)), spec)


def _consume(weighed, spec):
    """Consume the chosen host, as nova-scheduler does after its claim.

    Without it, every request of a kronos run would leave a reservation
    on its host that nothing settles (a real scheduler consumes or fails
    each choice within a second).
    """
    if weighed:
        weighed[0].obj.consume_from_request(spec)
    return weighed


def configure(url, ttl, timeout):
    CONF.set_override('policies_file', SAMPLE_POLICIES, group='kronos')
    CONF.set_override('metric_source', 'prometheus', group='kronos')
    CONF.set_override('weigher_cache_ttl', ttl, group='kronos')
    CONF.set_override('url', url, group='kronos_prometheus')
    if timeout is not None:
        CONF.set_override('timeout', timeout, group='kronos_prometheus')


# --------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------

def synthetic_cloud(fleet, cpus, horizon):
    hosts = [synthetic.SyntheticHost(
        name, cpus=cpus, mem_bytes=RAM_MB << 20,
        overhead_cores=cpu * cpus,
        mem_overhead_bytes=int(mem * (RAM_MB << 20)))
        for name, cpu, mem in fleet]
    # History ends ``horizon`` s in the future (Prometheus takes future
    # samples), so rate(...[5m]) at any time of the run is exact.
    duration = (horizon + 420) // 15 * 15
    return synthetic.SyntheticCloud(hosts, duration=duration)


def query_count(url):
    """Instant queries the server has answered so far (any status)."""
    def read():
        resp = requests.get(url + '/metrics', timeout=10)
        resp.raise_for_status()
        total = 0.0
        for line in resp.text.splitlines():
            if (line.startswith('prometheus_http_requests_total{')
                    and 'handler="/api/v1/query"' in line):
                total += float(line.rsplit(' ', 1)[1])
        return int(total)
    # The counter is bumped after the answer is sent: wait until it rests.
    last = read()
    for _ in range(50):
        time.sleep(0.02)
        now = read()
        if now == last:
            return now
        last = now
    return last


def instant(url, promql):
    resp = requests.get(url + '/api/v1/query', params={'query': promql},
                        timeout=120)
    resp.raise_for_status()
    return resp.json()['data']['result']


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------

def ms_since(start):
    return (time.perf_counter() - start) * 1000.0


def timed(fn):
    """ms taken by ``fn(spec)``, ``spec`` a new RequestSpec made untimed.

    Nova builds one RequestSpec per request, and a filter or weigher may
    key per-request state on it.
    """
    spec = make_spec()
    start = time.perf_counter()
    fn(spec)
    return ms_since(start)


def percentile(values, q):
    data = sorted(values)
    if not data:
        return float('nan')
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def stats(values):
    return {'median': statistics.median(values),
            'p95': percentile(values, 95), 'n': len(values)}


def added(ours, base):
    return {'median': ours['median'] - base['median'],
            'p95': ours['p95'] - base['p95'], 'n': ours['n']}


def paired(ours_ms, base_ms):
    """Stats of the per-pair differences (JSON only; less noisy)."""
    return stats([o - b for o, b in zip(ours_ms, base_ms)])


class WarmKeeper:
    """Keeps every timed warm request a cache hit, with loads if it can.

    Before the TTL can run out, the shared cache is dropped and refilled by
    one untimed request, outside the query counting, and ``has_loads``
    checked; a refill that got no loads is retried twice, after which the
    chunk runs anyway and its requests count as run without loads.
    """

    def __init__(self, refill, has_loads, url):
        self.refill = refill
        self.has_loads = has_loads
        self.url = url
        self.filled_at = None
        self.loaded = False
        self.failed_refills = 0

    def ensure(self):
        """Refill the cache if due; whether it holds loads."""
        if (self.filled_at is not None
                and time.monotonic() - self.filled_at < WARM_TTL * 0.5):
            return self.loaded
        for _ in range(3):
            loads.reset_shared_cache()
            self.refill()
            self.loaded = self.has_loads()
            if self.loaded:
                break
            self.failed_refills += 1
        self.filled_at = time.monotonic()
        return self.loaded

    def run(self, pairs, n, chunk=20):
        """ABBA-interleave ``pairs`` (a list of two callables) ``n`` times.

        :returns: two lists of ms, and {'queries': made by the timed
            calls, 'unloaded': pairs timed without loads in the cache,
            'failed_refills': refills that got no loads}.
        """
        out = ([], [])
        info = {'queries': 0, 'unloaded': 0}
        failed = self.failed_refills
        for begin in range(0, n, chunk):
            loaded = self.ensure()
            gc.collect()
            before = query_count(self.url)
            for i in range(begin, min(n, begin + chunk)):
                order = (0, 1) if i % 2 == 0 else (1, 0)
                for k in order:
                    out[k].append(timed(pairs[k]))
                info['unloaded'] += not loaded
            info['queries'] += query_count(self.url) - before
        info['failed_refills'] = self.failed_refills - failed
        return out[0], out[1], info


def interleave(a, b, n):
    out = ([], [])
    gc.collect()
    for i in range(n):
        order = ((0, a), (1, b)) if i % 2 == 0 else ((1, b), (0, a))
        for k, fn in order:
            out[k].append(timed(fn))
    return out


class WarningCounter(logging.Handler):
    """Collects WARNING+ records of nova_kronos (e.g. a failed fetch).

    The cache logs one kind of trouble at most once per ``[kronos]
    log_interval``; every phase starts from a new cache, so a phase that
    had a failure has at least one warning.
    """

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def since(self, mark):
        return len(self.messages) - mark


# --------------------------------------------------------------------------
# Fresh process
# --------------------------------------------------------------------------

def child_first_request(args):
    """In a new process: time the first kronos request (cache empty)."""
    warnings = WarningCounter()
    logging.getLogger('nova_kronos').addHandler(warnings)
    configure(args.child, WARM_TTL, args.timeout)
    sched = Scheduler()
    hosts = make_hosts(host_loads(args.hosts, args.seed))
    for _ in range(3):
        timed(lambda spec: sched.request(sched.baseline, hosts, spec))
    first = timed(lambda spec: sched.request(sched.with_kronos, hosts, spec))
    base = [timed(lambda spec: sched.request(sched.baseline, hosts, spec))
            for _ in range(5)]
    print(json.dumps({'first_ms': first,
                      'baseline_ms': statistics.median(base),
                      'warnings': warnings.messages}))


def fresh_process_runs(args, url, runs):
    """Time the first request in ``runs`` new processes.

    :returns: lists of first-request ms, of the same minus the baseline
        request, of the queries of each run, and the kronos warnings.
    """
    firsts, addeds, queries, warnings = [], [], [], []
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [ROOT] + [p for p in env.get('PYTHONPATH', '').split(os.pathsep)
                  if p])
    cmd = [sys.executable, os.path.abspath(__file__), '--hosts',
           str(args.hosts), '--seed', str(args.seed), '--child', url]
    if args.timeout is not None:
        cmd += ['--timeout', str(args.timeout)]
    for _ in range(runs):
        before = query_count(url)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=600)
        after = query_count(url)
        if proc.returncode != 0:
            raise RuntimeError('fresh-process run failed:\n%s'
                               % proc.stderr[-2000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        firsts.append(result['first_ms'])
        addeds.append(result['first_ms'] - result['baseline_ms'])
        queries.append(after - before)
        warnings.extend(result['warnings'])
    return firsts, addeds, queries, warnings


# --------------------------------------------------------------------------
# Profile
# --------------------------------------------------------------------------

def inside_kronos(sched, kron, requests):
    """Time spent inside our filter and weigher per whole request.

    Wraps ``PrometheusFilter.filter_all``, ``PrometheusWeigher.
    weigh_objects`` and ``weight_multiplier`` (which Nova's handler calls
    once per host) with clocks; the wrappers' own cost (about 0.1 us a
    call) is included, Nova's handler work around them is not.
    """
    flt, wgh = sched.kronos_filter, sched.kronos_weigher
    spent = [0.0]

    def clocked(fn):
        def wrapper(*a):
            t0 = time.perf_counter()
            try:
                return fn(*a)
            finally:
                spent[0] += time.perf_counter() - t0
        return wrapper

    def filter_all(hosts, spec):
        # Nova's handler consumes the result as a list: so do we, inside.
        return list(clocked(type(flt).filter_all.__get__(flt))(hosts, spec))

    flt.filter_all = filter_all
    wgh.weigh_objects = clocked(type(wgh).weigh_objects.__get__(wgh))
    wgh.weight_multiplier = clocked(
        type(wgh).weight_multiplier.__get__(wgh))
    per = []
    try:
        for _ in range(requests):
            spent[0] = 0.0
            kron(make_spec())
            per.append(spent[0] * 1000.0)
    finally:
        for obj, name in ((flt, 'filter_all'), (wgh, 'weigh_objects'),
                          (wgh, 'weight_multiplier')):
            del obj.__dict__[name]
    return stats(per)


def profile_warm(sched, hosts, reps):
    """Top nova_kronos functions of the warm filter + weigher path."""
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(reps):
        spec = make_spec()
        sched.filter_only(sched.kronos_filter, hosts, spec)
        sched.weigh_only(sched.kronos_weigher, hosts, spec)
    prof.disable()
    st = pstats.Stats(prof)
    rows = []
    for (path, line, func), (cc, nc, tt, ct, _) in st.stats.items():
        if os.sep + 'nova_kronos' + os.sep not in path:
            continue
        rows.append({
            'function': '%s:%d(%s)' % (os.path.relpath(path, ROOT), line,
                                       func),
            'calls_per_request': nc / reps,
            'cumulative_ms': ct * 1000.0 / reps,
            'own_ms': tt * 1000.0 / reps})
    rows.sort(key=lambda r: -r['cumulative_ms'])
    return rows[:10]


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def run(args):
    result = {'hosts': args.hosts, 'requests': args.requests,
              'policies': len(enabled_policies()),
              'cold_requests': args.cold_requests,
              'cpus_per_host': args.cpus, 'nova': nova_version(),
              'python': sys.version.split()[0],
              'eventlet': 'eventlet' in sys.modules}
    binary = prometheus.find_prometheus_binary()
    if binary is None:
        env = os.environ.get(prometheus.ENV_BINARY)
        result['skipped'] = (
            '$%s=%s is not an executable file' % (prometheus.ENV_BINARY, env)
            if env else 'prometheus binary not found on PATH (apt-get '
            'install prometheus, or set $%s)' % prometheus.ENV_BINARY)
        log('SKIP: %s', result['skipped'])
        return result
    # Other work on the machine skews every row: note how busy it was.
    result['loadavg_1min_start'] = os.getloadavg()[0]
    result['machine_cpus'] = os.cpu_count()
    warnings = WarningCounter()
    logging.getLogger('nova_kronos').addHandler(warnings)
    fleet = host_loads(args.hosts, args.seed)
    server = prometheus.PrometheusServer(binary)
    t0 = time.monotonic()
    server.start()
    try:
        url = server.url
        now = int(time.time())
        log('loading %d hosts x %d cpus into Prometheus %s ...',
            args.hosts, args.cpus, binary)
        result['series'] = server.remote_write(synthetic_cloud(
            fleet, args.cpus, args.horizon).series(now + args.horizon))
        log('  %d series in %.1f s', result['series'], time.monotonic() - t0)
        result['host_query_ms'] = check_data(url, fleet)
        measure(args, result, url, fleet, warnings)
        if time.monotonic() - t0 > args.horizon:
            warnings.messages.append(
                'run outlived --horizon %d s: late rates were inexact'
                % args.horizon)
    finally:
        server.stop()
        logging.getLogger('nova_kronos').removeHandler(warnings)
    result['warnings'] = warnings.messages
    result['seconds'] = time.monotonic() - t0
    result['loadavg_1min_end'] = os.getloadavg()[0]
    return result


def measure(args, result, url, fleet, warnings):
    configure(url, WARM_TTL, args.timeout)
    sched = Scheduler()
    hosts = make_hosts(fleet)
    noop_filter, noop_weigher = NoopFilter(), NoopWeigher()
    # Hosts whose kronos multiplier is the default: equal loads, equal
    # weights; all equal means the weigher has no loads.
    plain = [h for h in hosts if len(h.aggregates) == 1]

    def base(spec):
        sched.request(sched.baseline, hosts, spec)

    def kron(spec):
        sched.request(sched.with_kronos, hosts, spec)

    def has_loads():
        weighed = sched.weigh_only(sched.kronos_weigher, plain, make_spec())
        return len({round(w.weight, 9) for w in weighed}) > 1

    for _ in range(3):
        timed(base)
    result['passing'] = sanity(sched, hosts, fleet, url, warnings,
                               has_loads)

    # -- first request, in this process ------------------------------------
    runs = max(1, args.fresh_runs)
    log('first request (in-process) x %d ...', runs)
    firsts, q = [], 0
    timed(kron)     # lazy imports: the fresh-process row has those
    mark = len(warnings.messages)
    for _ in range(runs):
        loads.reset_shared_cache()
        before = query_count(url)
        firsts.append(timed(kron))
        q += query_count(url) - before
    b = stats([timed(base) for _ in range(max(5, runs))])
    result['first_in_process'] = {
        'request': stats(firsts), 'added': added(stats(firsts), b),
        'queries_per_request': q / runs, 'warnings': warnings.since(mark)}

    # -- warm --------------------------------------------------------------
    log('warm: %d x (baseline, with kronos) ...', args.requests)
    keeper = WarmKeeper(lambda: timed(kron), has_loads, url)
    mark = len(warnings.messages)
    b_ms, k_ms, info = keeper.run([base, kron], args.requests)
    warm = dict(info, baseline=stats(b_ms), with_kronos=stats(k_ms),
                paired_difference=paired(k_ms, b_ms),
                queries_per_request=info['queries'] / args.requests,
                warnings=warnings.since(mark))
    warm['added'] = added(warm['with_kronos'], warm['baseline'])
    log('warm: filter and weigher alone ...')
    for key, ours, noop in (
            ('filter',
             lambda spec: sched.filter_only(sched.kronos_filter, hosts, spec),
             lambda spec: sched.filter_only(noop_filter, hosts, spec)),
            ('weigher',
             lambda spec: sched.weigh_only(sched.kronos_weigher, hosts, spec),
             lambda spec: sched.weigh_only(noop_weigher, hosts, spec))):
        mark = len(warnings.messages)
        o_ms, n_ms, info = keeper.run([ours, noop], args.requests)
        warm[key] = dict(info, alone=stats(o_ms), noop=stats(n_ms),
                         added=added(stats(o_ms), stats(n_ms)),
                         paired_difference=paired(o_ms, n_ms),
                         queries_per_request=info['queries'] / args.requests,
                         warnings=warnings.since(mark))
    log('warm: time inside kronos code ...')
    keeper.ensure()
    warm['inside'] = inside_kronos(sched, kron, args.requests)
    result['warm'] = warm

    if args.profile:
        keeper.ensure()
        result['profile'] = profile_warm(sched, hosts, args.profile)

    # -- cold --------------------------------------------------------------
    log('cold: %d x (baseline, with kronos) ...', args.cold_requests)
    CONF.set_override('weigher_cache_ttl', 0, group='kronos')
    # A table fetched under the warm TTL would stay valid for it.
    mark = len(warnings.messages)
    loads.reset_shared_cache()
    timed(kron)
    before = query_count(url)
    b_ms, k_ms = interleave(base, kron, args.cold_requests)
    q = query_count(url) - before
    cold = {'baseline': stats(b_ms), 'with_kronos': stats(k_ms),
            'paired_difference': paired(k_ms, b_ms),
            'queries_per_request': q / args.cold_requests,
            'warnings': warnings.since(mark)}
    cold['added'] = added(cold['with_kronos'], cold['baseline'])
    result['cold'] = cold
    CONF.set_override('weigher_cache_ttl', WARM_TTL, group='kronos')

    # -- first request, fresh process --------------------------------------
    if args.fresh_runs:
        log('first request (fresh process) x %d ...', args.fresh_runs)
        firsts, addeds, queries, child_warnings = fresh_process_runs(
            args, url, args.fresh_runs)
        result['first_fresh_process'] = {
            'request': stats(firsts), 'added': stats(addeds),
            'queries_per_request': statistics.mean(queries),
            'warnings': len(child_warnings)}
        warnings.messages.extend(child_warnings)


def nova_version():
    try:
        from importlib import metadata
        return metadata.version('nova')
    except Exception:
        return getattr(nova, '__version__', '?')


def enabled_policies():
    with open(SAMPLE_POLICIES) as f:
        doc = yaml.safe_load(f)
    return {name: p for name, p in doc['policies'].items()
            if p.get('enabled', True)}


def check_data(url, fleet):
    """Every enabled host_query answers one sample per host.

    :returns: {policy: median ms of 3 runs of its host_query}.
    """
    out = {}
    for name, policy in sorted(enabled_policies().items()):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            got = len(instant(url, policy['host_query']))
            times.append(ms_since(start))
            if got != len(fleet):
                sys.exit('%s host_query returned %d samples for %d hosts'
                         % (name, got, len(fleet)))
        out[name] = statistics.median(times)
        log('  %s host_query: %d samples, %.0f ms (median of 3)', name, got,
            out[name])
    return out


def sanity(sched, hosts, fleet, url, warnings, has_loads):
    """Check that kronos sees the loads; exit if it never does.

    The weigher must not give every host (of equal multiplier) the same
    weight (three tries, from an empty cache each), and the filter should
    reject exactly the hosts above a threshold (a difference is only
    reported: the filter's rule may count the request's own size).
    """
    for _ in range(3):
        loads.reset_shared_cache()
        if has_loads():
            break
    else:
        sys.exit('PrometheusWeigher gave every host the same weight: kronos '
                 'got no loads from %s (a slow query? try fewer --cpus). '
                 'Its warnings:\n%s'
                 % (url, '\n'.join(warnings.messages) or '(none)'))
    policies = enabled_policies()
    cpu_t = policies['cpu']['threshold']
    mem_t = policies['memory']['threshold']
    over = {n for n, c, m in fleet if c > cpu_t or m > mem_t}
    spec = make_spec()
    passed_nova = sched.filter_handler.get_filtered_objects(
        sched.nova_filters, hosts, spec, index=0)
    passed = sched.filter_only(sched.kronos_filter, hosts, spec)
    rejected = {h.host for h in hosts} - {h.host for h in passed}
    if rejected != over:
        warnings.messages.append(
            'PrometheusFilter rejected %d hosts, %d are above a threshold'
            % (len(rejected), len(over)))
    return {'nova_filters': len(passed_nova),
            'kronos_filter_rejects': len(rejected)}


def fmt(value):
    return '%.3f' % value if abs(value) < 10 else '%.1f' % value


def table(r):
    t = prettytable.PrettyTable(['phase', 'what', 'median ms', 'p95 ms',
                                 'queries/request', 'kronos warnings'])
    t.align = 'r'
    t.align['phase'] = t.align['what'] = 'l'
    marked = []

    def row(phase, what, s, queries='', warned='', bad=False):
        if bad:
            what = '! ' + what
            marked.append(what)
        if isinstance(queries, float):
            queries = '%.2f' % queries
        t.add_row([phase, what, fmt(s['median']), fmt(s['p95']), queries,
                   warned])

    def fetch_failed(phase):
        return (phase['warnings'] > 0
                or phase['queries_per_request'] < r['policies'])

    w, c = r['warm'], r['cold']
    row('warm', 'baseline request', w['baseline'], 0.0)
    row('warm', 'with kronos', w['with_kronos'], w['queries_per_request'],
        w['warnings'], w['unloaded'] > 0)
    row('warm', '= kronos adds', w['added'], bad=w['unloaded'] > 0)
    if 'inside' in w:
        row('warm', 'inside kronos code', w['inside'])
    for key, cls in (('filter', 'PrometheusFilter'),
                     ('weigher', 'PrometheusWeigher')):
        bad = w[key]['unloaded'] > 0
        row('warm', '%s alone' % cls, w[key]['alone'],
            w[key]['queries_per_request'], w[key]['warnings'], bad)
        row('warm', 'no-op %s alone' % key, w[key]['noop'])
        row('warm', '= %s adds' % cls, w[key]['added'], bad=bad)
    row('cold', 'baseline request', c['baseline'], 0.0)
    row('cold', 'with kronos', c['with_kronos'], c['queries_per_request'],
        c['warnings'], fetch_failed(c))
    row('cold', '= kronos adds', c['added'], bad=fetch_failed(c))
    for key, what in (('first_in_process', 'in-process'),
                      ('first_fresh_process', 'fresh process')):
        if key in r:
            f = r[key]
            row('first', '%s, kronos adds' % what, f['added'],
                f['queries_per_request'], f['warnings'], fetch_failed(f))
    head = ('%d hosts (%d pass Nova\'s filters, PrometheusFilter rejects %d)'
            '; %d Prometheus series (%d cpus/host), host_query %s; Nova %s, '
            'Python %s, %s; warm n=%d, cold n=%d; %.0f s, load average '
            '%.2f -> %.2f on %d cpus'
            % (r['hosts'], r['passing']['nova_filters'],
               r['passing']['kronos_filter_rejects'], r['series'],
               r['cpus_per_host'],
               ', '.join('%s %.0f ms' % kv
                         for kv in sorted(r['host_query_ms'].items())),
               r['nova'], r['python'],
               'eventlet' if r['eventlet'] else 'native threads',
               r['requests'], r['cold_requests'], r['seconds'],
               r['loadavg_1min_start'], r['loadavg_1min_end'],
               r['machine_cpus']))
    out = [head, t.get_string()]
    if marked:
        out.append('! ran at least partly without loads (a fetch failed or '
                   'timed out; then neutral weights until the failure '
                   'backoff ends): not the working path.')
    if r.get('profile'):
        p = prettytable.PrettyTable(['nova_kronos function (warm filter + '
                                     'weigher)', 'calls/req', 'cum ms/req',
                                     'own ms/req'])
        p.align = 'r'
        p.align[p.field_names[0]] = 'l'
        for e in r['profile']:
            p.add_row([e['function'], '%g' % e['calls_per_request'],
                       '%.3f' % e['cumulative_ms'], '%.3f' % e['own_ms']])
        out.append('cProfile (profiler overhead inflates per-call costs):')
        out.append(p.get_string())
    if r['warnings']:
        out.append('kronos warnings (first 5 of %d):' % len(r['warnings']))
        out.extend('  ' + one_line(m) for m in r['warnings'][:5])
    return '\n'.join(out)


def one_line(text, limit=300):
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hosts', type=int, default=1000)
    parser.add_argument('-n', '--requests', type=int, default=200,
                        help='warm requests per variant (default: '
                             '%(default)s)')
    parser.add_argument('--cold-requests', type=int, default=10,
                        help='cold requests per variant (default: '
                             '%(default)s)')
    parser.add_argument('--fresh-runs', type=int, default=3,
                        help='first-request measurements, in-process and '
                             'in fresh processes; 0 skips the processes '
                             '(default: %(default)s)')
    parser.add_argument('--cpus', type=int, default=16,
                        help='cpus of each host\'s synthetic node_exporter '
                             '(node_cpu_seconds_total series = 2 x cpus); '
                             'drives Prometheus\' cost of the cpu query '
                             '(default: %(default)s)')
    parser.add_argument('--timeout', type=float,
                        help='[kronos_prometheus] timeout (default: the '
                             'option\'s default)')
    parser.add_argument('--horizon', type=int, default=DEFAULT_HORIZON,
                        help='seconds of data ahead of the start '
                             '(default: %(default)s)')
    parser.add_argument('--profile', type=int, default=0, metavar='REPS',
                        help='cProfile REPS warm filter + weigher runs and '
                             'list the top 10 nova_kronos functions')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--json', action='store_true',
                        help='print JSON instead of the table')
    parser.add_argument('--child', metavar='URL', help=argparse.SUPPRESS)
    args = parser.parse_args()
    objects.register_all()
    if args.child:
        return child_first_request(args)
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    elif 'skipped' not in result:
        print(table(result))


if __name__ == '__main__':
    main()
