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


"""Drain planner: move every server off named hosts, keeping balance.

Host maintenance and instance HA need hosts emptied under the same rules
as any other move. The drained hosts are never destinations; their
servers are candidates even while cooling down after a recent migration.
Each server goes to the host of its aggregate (drained hosts left out)
that keeps the aggregate's combined imbalance lowest, under every
constraint of :mod:`nova_kronos.constraints` and, with an oracle, Nova's
own rules.

Order: the largest server first (RAM, then vCPUs), as first-fit
decreasing packs best; a server that fits nowhere yet is tried again after
every move, since group rules depend on where the others went. When none
of the remaining servers fits anywhere, the planner tries to **make room**:
it moves one other server off a host the drained server is refused by only
for capacity or a threshold, to a third host, and plans the drained
server's move right after it (the executor runs moves sharing a host one
after the other, so the second starts once the first freed the room).
Placement counts the room only once the first migration is done, so when
Nova's rules are checked and still refuse the second move, the drained
server *waits* (``Plan.waiting``) and the next round of an executed run,
which reads the cloud again after the first move, plans it. A
server that still fits nowhere is reported in ``Plan.unmovable`` with the
constraints that refused it, and never stops the others; servers left
because the migration or GiB budget is spent are in ``Plan.deferred``
(a later run moves them).

The imbalance reported is taken over the aggregate's hosts without the
drained ones (what remains once they are empty); the policies balanced are
the ``spread``-mode ones, or every enabled policy when none is in spread
mode.

Part of the pure core: imports neither Nova nor openstacksdk.
"""

import numpy as np

from nova_kronos import constraints
from nova_kronos import planner
from nova_kronos.planner import base
from nova_kronos import scoring

#: Constraints that room freed on a host can satisfy.
_ROOM = ('capacity', 'threshold')


class DrainPlanner:
    """Plans live migrations that empty ``hosts``.

    :param hosts: host names to drain.
    :param settings: :class:`nova_kronos.planner.Settings` (its migration
        cost and GiB budget apply; the aggressiveness does not: a drain
        moves every server it can).
    :param constraint_set: sequence of ``(name, callable)``; default
        :data:`nova_kronos.constraints.DEFAULT`.
    """

    def __init__(self, hosts=(), settings=None, constraint_set=None):
        self.hosts = tuple(hosts)
        self.settings = settings or planner.Settings()
        self.constraints = tuple(constraint_set or constraints.DEFAULT)

    def plan(self, fleet, policy_set, snapshot, max_migrations,
             oracle=None, memory=None):
        """Plan the drain of ``self.hosts``; see the module docstring.

        Arguments as :meth:`nova_kronos.planner.spread.SpreadPlanner.plan`.
        Servers left on a drained host are in ``Plan.unmovable`` (those
        that may not move at all too, with the exclusion's reason),
        ``Plan.deferred`` (budget spent) or ``Plan.waiting``; a drained host
        emptied by the plan is in its aggregate's ``freed_hosts``.
        """
        ctx = base.prepare(fleet, policy_set, snapshot, self.settings,
                           'spread', oracle=oracle, memory=memory,
                           drain=self.hosts, fallback=True)
        st, result = ctx.state, ctx.result
        drained = np.array(sorted(st.host_index[h] for h in self.hosts
                                  if h in st.host_index), dtype=int)
        in_scope = {h for agg in fleet.aggregates for h in agg.hosts}
        for h in self.hosts:
            if h not in fleet.hosts or h not in in_scope:
                result.exclusions.append(
                    ('host', h, 'not drained: not a host of the aggregates '
                     'in scope'))
        # Imbalance over what remains once the drained hosts are empty.
        ctx.scopes = [(agg, h_idx[~np.isin(h_idx, drained)])
                      for agg, h_idx in ctx.scopes]
        ctx.before = [ctx.snapshot(h_idx) for _, h_idx in ctx.scopes]
        self._scope_of = {}
        for i, (agg, _) in enumerate(ctx.scopes):
            for h in agg.hosts:
                if h in st.host_index:
                    self._scope_of.setdefault(st.host_index[h], []).append(i)

        down = {st.host_index[h] for h in self.hosts
                if h in st.host_index and not fleet.hosts[h].usable
                and not fleet.hosts[h].disabled}
        pending = [v for v in np.nonzero(np.isin(st.src, drained))[0]]
        for v in list(pending):
            if st.src[v] in down:
                result.unmovable.append((
                    st.servers[v].id, 'its host is down (%s): a live '
                    'migration needs the source nova-compute up; evacuate '
                    'it instead' % fleet.hosts[st.host_names[st.src[v]]]
                    .unusable_reason))
                pending.remove(v)
        pending.sort(key=lambda v: (-st.memory_mb[v], -st.vcpus[v],
                                    st.servers[v].id))
        why = {}
        while pending and len(result.moves) < max_migrations:
            placed = False
            for v in list(pending):
                if len(result.moves) >= max_migrations:
                    break
                found = self._best(ctx, v, why)
                if found is not None:
                    self._move(ctx, v, found, 'drains %s'
                               % st.host_names[st.src[v]])
                    pending.remove(v)
                    placed = True
            if not placed:
                placed = self._make_room(ctx, pending, max_migrations)
            if not placed:
                break
        spent = len(result.moves) >= max_migrations
        for v in pending:
            sid = st.servers[v].id
            if spent:
                result.deferred.append((sid, (
                    'not planned: the budget of %d live migration(s) is '
                    'spent' % max_migrations)))
            elif ctx.gib[v] > ctx.gib_left():
                result.deferred.append((sid, (
                    'not planned: %.1f GiB to copy, %.1f GiB of the budget '
                    'left' % (ctx.gib[v], ctx.gib_left()))))
            else:
                result.unmovable.append((sid, (
                    'no host of its aggregate accepts it: %s' % (
                        ', '.join('%s %d' % kv for kv in sorted(
                            why.get(v, {}).items())) or 'no other host'))))
        # Servers that may not move at all stay too; say so.
        why_not = {name: reason for kind, name, reason in result.exclusions
                   if kind == 'server'}
        staying = ctx.staying(fleet)
        for h in drained:
            for sid in staying.get(st.host_names[h], ()):
                result.unmovable.append(
                    (sid, why_not.get(sid, 'not a candidate')))
        left = set(st.src[~st.moved].tolist())
        freed = [[st.host_names[h] for h in drained
                  if st.host_names[h] in agg.hosts and h not in left
                  and st.host_names[h] not in staying]
                 for agg, _ in ctx.scopes]
        return ctx.finish(freed)

    def _best(self, ctx, v, why, exclude=(), only=None):
        """``(rank, scope, dst, imbalance now, after)`` for ``v``, or None.

        :param exclude: host indexes not to consider.
        :param only: the one host index to consider, or None.
        Fills ``why[v]`` with the rejections by constraint when no host
        accepts it.
        """
        st = ctx.state
        best = None
        rejections = {}
        if ctx.gib[v] > ctx.gib_left():
            return None
        for i in self._scope_of.get(int(st.src[v]), ()):
            agg, h_idx = ctx.scopes[i]
            dests = h_idx[~np.isin(h_idx, list(exclude))]
            if only is not None:
                dests = dests[dests == only]
            if not len(dests):
                continue
            vv = np.array([v])
            ok = ctx.allowed(self.constraints, vv, dests, rejections)[0]
            if not ok.any():
                continue
            local = np.full(len(st.host_names), -1, dtype=int)
            local[h_idx] = np.arange(len(h_idx))
            cur = scoring.imbalance(st.loads[:, h_idx], st.weights)
            predicted = scoring.candidate_imbalance(
                st.loads[:, h_idx], st.weights, local[st.src[vv]],
                st.shares[:, vv], st.scale(vv, dests),
                dst=local[dests])[0]
            score = np.where(ok, predicted, np.inf)[None, :]
            if ctx.feas is not None:
                flat = ctx.feas.best(vv, dests, score)
                ctx.feas.count(vv, dests, ok[None, :], rejections)
            else:
                flat = int(np.argmin(score))
            if flat is None or not np.isfinite(score.flat[flat]):
                continue
            if best is None or score.flat[flat] < best[0]:
                best = (float(score.flat[flat]), i, int(dests[flat]), cur,
                        float(predicted[flat]))
        if best is None:
            why[v] = rejections
        return best

    def _move(self, ctx, v, found, what):
        _, i, dst, cur, new = found
        agg, h_idx = ctx.scopes[i]
        reason = '%s; %s' % (what, ctx.reason(v, dst, h_idx))
        ctx.move(v, dst, agg.name, reason, cur, new)

    def _make_room(self, ctx, pending, max_migrations):
        """Plan one other server's move that lets a pending one fit.

        :returns: True when moves were planned (the pending server's
            included, or it waits in ``Plan.waiting``; either way it
            leaves ``pending``).
        """
        st = ctx.state
        if len(ctx.result.moves) + 2 > max_migrations:
            return False
        other = tuple((n, c) for n, c in self.constraints
                      if n not in _ROOM)
        # Servers that may make room, by host (one pass, not one per host).
        on_host = {}
        waiting = set(pending)
        for y in np.flatnonzero(~st.moved):
            if y not in waiting:
                on_host.setdefault(int(st.src[y]), []).append(y)
        for x in pending:
            for i in self._scope_of.get(int(st.src[x]), ()):
                agg, h_idx = ctx.scopes[i]
                xx = np.array([x])
                # Hosts refused only for room, least loaded first.
                blocked = ctx.allowed(other, xx, h_idx)[0] & ~ctx.allowed(
                    self.constraints, xx, h_idx)[0]
                hosts = h_idx[blocked]
                hosts = hosts[np.argsort(st.weights @ st.loads[:, hosts],
                                         kind='stable')]
                for c in hosts:
                    if self._room_on(ctx, x, c, on_host.get(int(c), ())):
                        pending.remove(x)
                        return True
        return False

    def _room_on(self, ctx, x, c, others):
        """Move one server off host ``c``, then ``x`` there; True if done.

        Both moves are tried on the planning state first and planned only
        when the constraints then accept ``x`` on ``c``. When Nova's rules
        (an oracle) still refuse it, as Placement does until the first
        migration is over, only the first move is planned and ``x`` waits
        (``Plan.waiting``).

        :param others: candidate indexes on ``c`` that may move.
        """
        st = ctx.state
        for y in sorted(others, key=lambda y: (st.memory_mb[y], st.vcpus[y],
                                               st.servers[y].id)):
            if ctx.gib[y] + ctx.gib[x] > ctx.gib_left():
                continue
            found = self._best(ctx, y, {}, exclude=(c,))
            if found is None:
                continue
            token = st.apply(y, found[2])
            fits = ctx.allowed(self.constraints, np.array([x]),
                               np.array([c]))[0, 0]
            after = self._best(ctx, x, {}, only=c) if fits else None
            st.undo(token)
            if not fits:
                continue
            self._move(ctx, y, found, 'makes room on %s for %s'
                       % (st.host_names[c], st.servers[x].id))
            if after is not None:
                self._move(ctx, x, self._best(ctx, x, {}, only=c) or after,
                           'drains %s' % st.host_names[st.src[x]])
            else:
                # Nova's rules (Placement) still count the server leaving
                # c: ask again once its migration is done.
                ctx.result.waiting.append((
                    st.servers[x].id, 'waits for the room the move of %s '
                    'off %s makes: planned in the next round of an '
                    'executed run, once Nova shows it done'
                    % (st.servers[y].id, st.host_names[c])))
            return True
        return False
