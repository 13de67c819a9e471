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


"""What recent live migrations mean for the next plan.

The rebalancer keeps no state file: its memory is rebuilt on every run from
Nova's own migration records (``GET /os-migrations``, filtered by the
caller to ``migration_type=live-migration``), whoever started them. From
those records :func:`remember` derives:

* **frozen** servers: a live migration is in progress, so the server is
  not a candidate, and its move counts as already applied (``in_flight``);
* **cooldown**: a server live-migrated recently rests before it is moved
  again, longer each time it was moved within a rolling window
  (exponential backoff, capped);
* **quarantine**: a (server, destination) whose live migration failed
  recently is not planned again for a while; a failure with no destination
  recorded quarantines the server for every destination;
* **settling**: completed migrations too recent for a policy's metrics to
  reflect (Prometheus rate windows lag); the planner overlays them on the
  measured loads so the same imbalance is not corrected twice.

Times are epoch seconds (UTC) throughout.

This module is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import dataclasses
import time

# Live-migration statuses, as read in Nova 34.0.0's source:
# ``accepted`` is set when nova-conductor creates the record
# (ComputeTaskManager._live_migrate); ``queued`` when the source compute
# queues it, ``preparing`` and ``running`` in ComputeManager.live_migration
# and _do_live_migration; ``completed`` in _post_live_migration; ``failed``
# by _rollback_live_migration, the conductor's retry limit and
# _cleanup_incomplete_migrations; ``error`` by the conductor when a
# pre-check or scheduling fails (the destination may then be unset);
# ``cancelled`` by live_migration_abort and the libvirt driver's abort.

#: Statuses of a live migration still under way. ``post-migrating`` is in
#: Nova's API list of live migrations in progress
#: (nova/api/openstack/compute/migrations.py); ``cancelling`` is not written
#: by Nova 34.0.0 but is kept as in progress so an abort under way is never
#: mistaken for a finished migration.
IN_PROGRESS = frozenset(['accepted', 'queued', 'preparing', 'running',
                         'post-migrating', 'cancelling'])
#: The server runs on the destination.
COMPLETED = frozenset(['completed'])
#: The move did not happen and the destination (or the scheduler, when no
#: destination was recorded) refused it: quarantined.
FAILED = frozenset(['failed', 'error'])
#: Aborted on request: neither a move nor a refusal.
CANCELLED = frozenset(['cancelled'])


def status_class(status):
    """Class of a Nova migration status.

    :returns: ``'in progress'``, ``'completed'``, ``'failed'``,
        ``'cancelled'`` or None for a status none of the constants above
        holds (e.g. a resize status: such records are ignored).
    """
    for name, statuses in (('in progress', IN_PROGRESS),
                           ('completed', COMPLETED), ('failed', FAILED),
                           ('cancelled', CANCELLED)):
        if status in statuses:
            return name
    return None


@dataclasses.dataclass(frozen=True)
class MigrationRecord:
    """One Nova live-migration record (an ``/os-migrations`` entry).

    :ivar id: Nova's migration id.
    :ivar server_id: ``instance_uuid``.
    :ivar source: ``source_compute`` (a nova-compute host name).
    :ivar destination: ``dest_compute``, or None: Nova leaves it unset when
        the conductor refuses a live migration before a host is chosen.
    :ivar status: Nova's status string (see :data:`IN_PROGRESS` & co).
    :ivar created_at: epoch seconds, UTC.
    :ivar updated_at: epoch seconds, UTC; ``created_at`` when Nova gives
        none.
    """

    id: int
    server_id: str
    source: str
    destination: str
    status: str
    created_at: float
    updated_at: float


@dataclasses.dataclass(frozen=True)
class MemoryOptions:
    """How long the past weighs on the next plan; seconds throughout.

    :ivar cooldown: rest of a server after its last completed live
        migration; doubles with each further one in ``window``; 0 disables
        cooldowns.
    :ivar cooldown_max: cap of the doubled cooldown.
    :ivar window: rolling window in which completed live migrations count
        for the backoff.
    :ivar quarantine: time a failed (server, destination) is not planned
        again; 0 disables quarantines.
    """

    cooldown: float = 3600.0
    cooldown_max: float = 86400.0
    window: float = 86400.0
    quarantine: float = 3600.0

    def __post_init__(self):
        for name in ('cooldown', 'cooldown_max', 'window', 'quarantine'):
            if getattr(self, name) < 0:
                raise ValueError('%s must be >= 0, got %r'
                                 % (name, getattr(self, name)))


@dataclasses.dataclass
class Memory:
    """What the migration records say about the next plan.

    :ivar frozen: dict server id -> reason: a live migration is in
        progress; the server is not moved.
    :ivar in_flight: list of ``(server_id, source, destination)`` for the
        in-progress migrations whose destination is known: the planner
        counts them as applied.
    :ivar cooldown: dict server id -> ``(until, reason)``: not moved before
        ``until`` (epoch seconds).
    :ivar quarantine: dict ``(server_id, destination)`` -> ``(until,
        reason)``; destination None stands for every destination.
    :ivar settling: dict policy name -> list of ``(server_id, source,
        destination)``: completed migrations that policy's metrics do not
        fully reflect yet.
    :ivar unrecognised: list of ``(record id, status)`` whose status is in
        none of the classes (ignored).
    """

    frozen: dict = dataclasses.field(default_factory=dict)
    in_flight: list = dataclasses.field(default_factory=list)
    cooldown: dict = dataclasses.field(default_factory=dict)
    quarantine: dict = dataclasses.field(default_factory=dict)
    settling: dict = dataclasses.field(default_factory=dict)
    unrecognised: list = dataclasses.field(default_factory=list)

    def add_quarantine(self, server_id, destination, until, reason):
        """Quarantine ``(server_id, destination)`` until epoch ``until``.

        For a refusal seen in-process, before Nova's record is read again.
        An existing entry that lasts longer is kept.
        """
        key = (server_id, destination)
        old = self.quarantine.get(key)
        if old is None or old[0] < until:
            self.quarantine[key] = (until, reason)

    @property
    def is_empty(self):
        """True when nothing constrains or corrects the next plan."""
        return not (self.frozen or self.in_flight or self.cooldown
                    or self.quarantine
                    or any(self.settling.values()))

    def summary(self):
        """Counts for reports: dict name -> int.

        ``settling`` counts distinct migrations, whatever the number of
        policies they settle for.
        """
        return {
            'frozen': len(self.frozen),
            'in_flight': len(self.in_flight),
            'cooldown': len(self.cooldown),
            'quarantine': len(self.quarantine),
            'settling': len({m for moves in self.settling.values()
                             for m in moves}),
            'unrecognised': len(self.unrecognised),
        }


def remember(records, now, options=None, settle_times=None):
    """Derive the planner's :class:`Memory` from migration records.

    :param records: iterable of :class:`MigrationRecord` (live migrations
        only; other types' statuses are not told apart here).
    :param now: epoch seconds, UTC.
    :param options: :class:`MemoryOptions` (defaults when None).
    :param settle_times: dict policy name -> seconds after which that
        policy's metrics fully reflect a migration; a policy missing or at
        0 has nothing settling.
    :returns: :class:`Memory`; cooldowns and quarantines already over at
        ``now`` are left out.

    A record dated after ``now`` (clock skew between Nova and this host)
    counts as happening now, so a fresh migration is never overlooked.
    """
    options = options or MemoryOptions()
    settle_times = settle_times or {}
    mem = Memory()
    running = {}
    completed = {}
    for r in records:
        klass = status_class(r.status)
        t = r.updated_at if r.updated_at is not None else r.created_at
        if klass == 'in progress':
            # Nova runs one live migration per server at a time; keep the
            # newest should stale records linger.
            if (r.server_id not in running
                    or running[r.server_id].created_at < r.created_at):
                running[r.server_id] = r
        elif klass == 'completed':
            if t >= now - options.window:
                completed.setdefault(r.server_id, []).append(t)
            if r.destination and r.source != r.destination:
                for policy, settle in settle_times.items():
                    if t > now - settle:
                        mem.settling.setdefault(policy, []).append(
                            (r.server_id, r.source, r.destination))
        elif klass == 'failed':
            if options.quarantine and t > now - options.quarantine:
                until = t + options.quarantine
                mem.add_quarantine(r.server_id, r.destination, until,
                                   _quarantine_reason(r, t, until))
        elif klass is None:
            mem.unrecognised.append((r.id, r.status))

    for sid, r in running.items():
        mem.frozen[sid] = 'live migration %s in progress (status %s) from ' \
            '%s to %s since %s' % (
                r.id, r.status, r.source,
                r.destination or 'a host the scheduler picks',
                _iso(r.created_at))
        if r.destination:
            mem.in_flight.append((sid, r.source, r.destination))

    if options.cooldown:
        for sid, times in completed.items():
            n, last = len(times), max(times)
            rest = min(options.cooldown * 2 ** (n - 1), options.cooldown_max)
            until = last + rest
            if until > now:
                mem.cooldown[sid] = (until, (
                    'live-migrated %d time%s in the last %s, last at %s; '
                    'cooldown until %s' % (
                        n, '' if n == 1 else 's', _duration(options.window),
                        _iso(last), _iso(until))))
    return mem


def _quarantine_reason(r, t, until):
    if r.destination is None:
        return ('live migration %s refused (status %s, no destination '
                'recorded) at %s; not moved before %s'
                % (r.id, r.status, _iso(t), _iso(until)))
    return ('live migration %s to %s failed (status %s) at %s; not planned '
            'there before %s' % (r.id, r.destination, r.status, _iso(t),
                                 _iso(until)))


def _iso(t):
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t))


def _duration(seconds):
    if seconds % 3600 == 0:
        return '%d h' % (seconds // 3600)
    return '%g s' % seconds
