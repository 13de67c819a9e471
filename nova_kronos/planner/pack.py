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


"""Pack planner: consolidate load by emptying the least loaded hosts.

For the policies in ``pack`` mode (weights renormalised to sum to 1), each
aggregate's usable hosts are taken least loaded first. A host is emptied
only if *all* its servers can go elsewhere within the budget: each server,
the largest first, goes to the fullest other host that still takes it
under every constraint (every policy's threshold, vCPU and RAM
allocation, zone, liveness, server groups and, with an oracle, Nova's own
rules), as the pack weigher would place it. If one server fits nowhere, or
the host needs more moves or GiB than the budget has left, no move off it
is planned (the reason is in ``Plan.exclusions``) and the next host is
tried: a plan never leaves a host half-emptied. Hosts that received
servers are never emptied afterwards, and emptied hosts never receive.
The hosts a plan empties are each aggregate's ``freed_hosts``; a host
holding a server that may not move (not ACTIVE, migrating, cooling down)
is not emptied.

The aggressiveness does not apply (a pack plan frees whole hosts or
nothing); ``migration_cost`` orders hosts of equal load by the GiB their
servers hold, fewest first.

Part of the pure core: imports neither Nova nor openstacksdk.
"""

import numpy as np

from nova_kronos import constraints
from nova_kronos import planner
from nova_kronos.planner import base


class PackPlanner:
    """Plans moves that empty the least loaded hosts of each aggregate.

    :param settings: :class:`nova_kronos.planner.Settings`.
    :param constraint_set: sequence of ``(name, callable)``; default
        :data:`nova_kronos.constraints.DEFAULT`.
    """

    def __init__(self, settings=None, constraint_set=None):
        self.settings = settings or planner.Settings()
        self.constraints = tuple(constraint_set or constraints.DEFAULT)

    def plan(self, fleet, policy_set, snapshot, max_migrations,
             oracle=None, memory=None):
        """Plan up to ``max_migrations`` moves that free whole hosts.

        Arguments as :meth:`nova_kronos.planner.spread.SpreadPlanner.plan`.
        """
        ctx = base.prepare(fleet, policy_set, snapshot, self.settings,
                           'pack', oracle=oracle, memory=memory)
        st, result = ctx.state, ctx.result
        if ctx.idle:
            return ctx.finish()
        # Hosts holding a server that may not move cannot be emptied.
        stuck = ctx.staying(fleet)
        freed = [[] for _ in ctx.scopes]
        received = set()
        emptied = set()
        for i, (agg, h_idx) in enumerate(ctx.scopes):
            load = st.weights @ st.loads[:, h_idx]
            held = np.bincount(st.src, weights=ctx.gib,
                               minlength=len(st.host_names))[h_idx]
            order = np.lexsort((held if self.settings.migration_cost
                                else np.zeros(len(h_idx)), load))
            for h in h_idx[order]:
                name = st.host_names[h]
                if h in received or h in emptied or not st.usable[h]:
                    continue
                servers = np.nonzero(st.src == h)[0]
                if name in stuck:
                    result.exclusions.append((
                        'host', name, 'not emptied: server %s on it may not '
                        'move' % stuck[name][0]))
                    continue
                if not len(servers):
                    continue
                left = max_migrations - len(result.moves)
                if len(servers) > left:
                    result.exclusions.append((
                        'host', name, 'not emptied: %d live migration(s) '
                        'needed, %d left in the budget'
                        % (len(servers), left)))
                    continue
                gib = float(ctx.gib[servers].sum())
                if gib > ctx.gib_left():
                    result.exclusions.append((
                        'host', name, 'not emptied: %.1f GiB to copy, %.1f '
                        'GiB left in the budget' % (gib, ctx.gib_left())))
                    continue
                moves = self._empty(ctx, h, h_idx, servers,
                                    emptied | {h})
                if isinstance(moves, str):
                    result.exclusions.append(
                        ('host', name, 'not emptied: %s' % moves))
                    continue
                for v, dst in moves:
                    before = ctx.imbalance(h_idx)
                    reason = 'empties %s; %s' % (name,
                                                 ctx.reason(v, dst, h_idx))
                    token = st.apply(v, dst)
                    after = ctx.imbalance(h_idx)
                    st.undo(token)
                    ctx.move(v, dst, agg.name, reason, before, after)
                    received.add(dst)
                emptied.add(h)
                freed[i].append(name)
        return ctx.finish(freed)

    def _empty(self, ctx, h, h_idx, servers, closed):
        """Destinations for every server of host ``h``, tried and undone.

        :param closed: host indexes that may not receive.
        :returns: list of ``(v, dst)`` in order, or a str saying which
            server fits nowhere and why.
        """
        st = ctx.state
        dests = np.array([d for d in h_idx if d not in closed], dtype=int)
        order = sorted(servers, key=lambda v: (-st.memory_mb[v],
                                               -st.vcpus[v],
                                               st.servers[v].id))
        tokens, moves = [], []
        failure = None
        for v in order:
            if not len(dests):
                failure = 'no other host to receive its servers'
                break
            vv = np.array([v])
            rejections = {}
            ok = ctx.allowed(self.constraints, vv, dests, rejections)
            fill = st.loads[:, dests] + np.stack(
                [st.added_load(p, vv, dests)[0]
                 for p in range(len(st.policies))])
            # Fullest after the move first (best fit), as the pack
            # weigher ranks hosts.
            score = np.where(ok, -(st.weights @ fill), np.inf)   # [1, D]
            if ctx.feas is not None:
                flat = ctx.feas.best(vv, dests, score)
                ctx.feas.count(vv, dests, ok, rejections)
            else:
                flat = int(np.argmin(score))
            if flat is None or not np.isfinite(score.flat[flat]):
                failure = 'server %s fits on no other host (%s)' % (
                    st.servers[v].id, ', '.join(
                        '%s %d' % kv for kv in sorted(rejections.items()))
                    or 'no candidate host')
                break
            dst = int(dests[flat])
            tokens.append(st.apply(v, dst))
            moves.append((v, dst))
        for token in reversed(tokens):
            st.undo(token)
        return failure or moves
