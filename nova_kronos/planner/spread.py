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


"""Spread planner: greedy moves that lower each aggregate's imbalance.

At each step, for every aggregate in scope whose combined imbalance is
above the tolerated one (:class:`nova_kronos.planner.Settings`), the
planner scores (candidate server, destination host) pairs of that
aggregate with :func:`nova_kronos.scoring.candidate_imbalance`, masks out
the pairs a constraint forbids (:mod:`nova_kronos.constraints`), and keeps
the pairs whose :func:`~nova_kronos.planner.gain` reaches the level's
smallest gain (any positive gain for a move off a host above a policy's
threshold). Among those it takes the best gain per GiB copied (with
``migration_cost``; else the best gain), across aggregates, applies it to
the planning state, and repeats until the migration or GiB budget is
spent, every aggregate is within its target, or no move qualifies. A
server is moved at most once per plan.

The imbalance balanced here is that of the ``spread`` policies, their
weights renormalised to sum to 1; ``pack`` policies only bound the
destinations through their thresholds (consolidating is
:mod:`nova_kronos.planner.pack`'s job).

Cost per step: ``O(P * V_a * H_a)`` vectorised per aggregate, scored in
chunks of at most :data:`nova_kronos.planner.base.CHUNK_PAIRS` pairs so
memory stays bounded, with every lookup indexed (see
:class:`~nova_kronos.planner.state.PlanningState`). In large aggregates
the planner first looks only at moves from the ``prune_hosts`` most loaded
hosts to the ``prune_hosts`` least loaded ones, where the best moves are,
and widens the window fourfold each time it finds nothing that
qualifies, up to every pair.

With a :class:`nova_kronos.history.Memory` (Nova's recent live-migration
records), servers migrating or cooling down are not candidates, quarantined
(server, destination) pairs are masked, and migrations in progress or too
recent for the metrics are laid over the measured loads with the same move
model as a planned move, so a lagging rate window never makes the planner
correct the same imbalance twice.
"""

import numpy as np

from nova_kronos import constraints
from nova_kronos import planner
from nova_kronos.planner import base
from nova_kronos.planner import state as state_mod
from nova_kronos import scoring


class SpreadPlanner:
    """Plans moves that spread load evenly inside each aggregate.

    :param settings: :class:`nova_kronos.planner.Settings` (default: the
        defaults: aggressiveness 3, migration cost on).
    :param constraint_set: sequence of ``(name, callable)``; default
        :data:`nova_kronos.constraints.DEFAULT`.
    :param prune_hosts: in aggregates of more than twice this many hosts,
        first look only at moves from the this-many most loaded hosts to
        the this-many least loaded, widening fourfold while nothing
        qualifies; 0 always looks at every pair.
    """

    def __init__(self, settings=None, constraint_set=None, prune_hosts=16):
        self.settings = settings or planner.Settings()
        self.prune_hosts = int(prune_hosts)
        self.constraints = tuple(constraint_set or constraints.DEFAULT)

    def plan(self, fleet, policy_set, snapshot, max_migrations,
             oracle=None, memory=None):
        """Plan up to ``max_migrations`` moves.

        :param fleet: :class:`nova_kronos.fleet.Fleet`; its ``aggregates``
            are the scope.
        :param policy_set: :class:`nova_kronos.policy.PolicySet`.
        :param snapshot: :class:`nova_kronos.metrics.Snapshot` with host
            loads and server shares for every enabled policy.
        :param max_migrations: int >= 0.
        :param oracle: optional feasibility oracle (see
            :mod:`nova_kronos.constraints.feasibility`): every planned move
            is one it says Nova accepts; servers it cannot evaluate are
            left out, and servers it finds no destination for are reported.
        :param memory: optional :class:`nova_kronos.history.Memory`:
            frozen and cooling-down servers are left out (reported),
            quarantined pairs are masked (rejection ``quarantine``), and
            in-flight and settling migrations are overlaid on the loads
            (``Plan.overlay``; ``loads_before`` is the overlaid load). The
            snapshot is not modified.
        :returns: :class:`nova_kronos.planner.Plan`.
        """
        ctx = base.prepare(fleet, policy_set, snapshot, self.settings,
                           'spread', oracle=oracle, memory=memory)
        if ctx.idle:
            return ctx.finish()
        result = ctx.result
        while len(result.moves) < max_migrations:
            best = None
            for i, (agg, h_idx) in enumerate(ctx.scopes):
                found = self.best_move(ctx, h_idx, ctx.rejections[i])
                if found is not None and (best is None
                                          or found[0] < best[1][0]):
                    best = (i, found)
            if best is None:
                break
            i, (_, v, dst, cur, new) = best
            agg, h_idx = ctx.scopes[i]
            ctx.move(v, dst, agg.name, ctx.reason(v, dst, h_idx), cur, new)
        return ctx.finish()

    def best_move(self, ctx, h_idx, rejections):
        """The best qualifying move inside the hosts ``h_idx``, or None.

        :param ctx: the plan's :class:`~nova_kronos.planner.base.Context`.
        :param h_idx: int array of the aggregate's host indexes.
        :param rejections: dict filled with the candidates each constraint
            rejected in this step.
        :returns: ``(rank, v, dst, imbalance now, imbalance after)``;
            lower ``rank`` is better (minus the gain, per cost unit with
            ``migration_cost``).
        """
        st, settings = ctx.state, ctx.settings
        if len(h_idx) < 2:
            return None
        sub_loads = st.loads[:, h_idx]
        current = scoring.imbalance(sub_loads, st.weights)
        over = ~scoring.within_threshold(
            sub_loads, st.thresholds[:, None]).all(axis=0)
        balancing = current > settings.tolerated_imbalance and \
            not settings.relieve_only
        if not balancing and not over.any():
            return None
        local = np.full(len(st.host_names), -1, dtype=int)
        local[h_idx] = np.arange(len(h_idx))
        movable = (local[st.src] >= 0) & ~st.moved
        if not balancing:
            # Only hosts above a threshold give servers.
            movable &= over[np.maximum(local[st.src], 0)]
        min_gain = settings.min_gain if balancing else np.inf
        if not movable.any():
            return None
        # Windows are taken among the hosts that hold a movable server
        # (sources) and those with room for the smallest one (a cold but
        # full host would only fill a window with refusals).
        small = np.nonzero(movable)[0]
        dest_ok = (st.usable[h_idx]
                   & (st.free_vcpus[h_idx] >= st.vcpus[small].min())
                   & (st.free_memory_mb[h_idx] >= st.memory_mb[small].min()))
        load = st.weights @ sub_loads
        k = self.prune_hosts
        bounded = False
        while True:
            srcs = np.nonzero(np.bincount(local[st.src[movable]],
                                          minlength=len(h_idx)))[0]
            dsts = np.nonzero(dest_ok)[0]
            if not len(srcs) or not len(dsts):
                return None
            pruned = k and (len(srcs) > k or len(dsts) > k)
            if pruned:
                top = srcs[np.argsort(load[srcs], kind='stable')[-k:]]
                mask = movable & np.isin(local[st.src], top)
                dests = np.sort(dsts[np.argsort(load[dsts],
                                                kind='stable')[:k]])
            else:
                mask, dests = movable, dsts
            found = self._best_in(
                ctx, h_idx, local, np.nonzero(mask)[0], dests, sub_loads,
                current, over, min_gain, rejections)
            if found is not None or not pruned:
                return found
            if not bounded:
                # Before widening: keep only the hosts a qualifying move
                # can still come from or go to.
                bound = gain_bound(sub_loads, st.weights,
                                   st.capacity[:, h_idx])
                pair_ok = (bound >= min_gain) | (over[:, None] & (bound > 0))
                movable &= pair_ok.any(axis=1)[np.maximum(local[st.src], 0)]
                dest_ok &= pair_ok.any(axis=0)
                bounded = True
            k *= 4

    def _best_in(self, ctx, h_idx, local, v_idx, dests, sub_loads, current,
                 over, min_gain, rejections):
        """Best qualifying move of servers ``v_idx`` to local ``dests``.

        Scored chunk by chunk, keeping only each chunk's best, so memory
        stays bounded; with ``ctx.feas`` (Nova's rules, asked last) the
        chunks are scored again best-first and the oracle is asked about
        the pairs ranked ahead of the best accepted one.
        """
        rejections.clear()
        if not len(v_idx):
            return None
        d_glob = h_idx[dests]

        def pick(score, predicted, vc, flat):
            row, col = divmod(flat, len(dests))
            return (float(score.flat[flat]), int(vc[row]), int(d_glob[col]),
                    current, float(predicted.flat[flat]))

        parts = base.chunks(len(v_idx), len(dests))
        tops = []
        best = None
        for rows in parts:
            vc = v_idx[rows]
            score, predicted = self._score(ctx, h_idx, local, vc, dests,
                                           sub_loads, current, over,
                                           min_gain, rejections)
            flat = int(np.argmin(score))
            if not np.isfinite(score.flat[flat]):
                continue
            if ctx.feas is not None:
                # Keep the arrays of a lone chunk; rescore the others.
                tops.append((float(score.flat[flat]), rows,
                             (score, predicted) if len(parts) == 1
                             else None))
            elif best is None or score.flat[flat] < best[0]:
                best = pick(score, predicted, vc, flat)
        tops.sort(key=lambda t: t[0])
        for top, rows, kept in tops:
            if best is not None and top >= best[0]:
                break
            vc = v_idx[rows]
            score, predicted = kept or self._score(
                ctx, h_idx, local, vc, dests, sub_loads, current, over,
                min_gain, None)
            flat = ctx.feas.best(vc, d_glob, score)
            if flat is not None and (best is None
                                     or score.flat[flat] < best[0]):
                best = pick(score, predicted, vc, flat)
        return best

    def _score(self, ctx, h_idx, local, vc, dests, sub_loads, current, over,
               min_gain, rejections):
        """Rank [len(vc), len(dests)] (inf: not allowed) and predictions.

        A pair qualifies when every constraint allows it, its gain is
        positive and at least ``min_gain`` (or its source is above a
        threshold), and the server's GiB fit what the plan may still copy.
        """
        st, settings = ctx.state, ctx.settings
        d_glob = h_idx[dests]
        src_local = local[st.src[vc]]
        predicted = scoring.candidate_imbalance(
            sub_loads, st.weights, src_local, st.shares[:, vc],
            st.scale(vc, d_glob), dst=dests)
        gain = planner.gain(current, predicted, len(h_idx))
        allowed = ctx.allowed(self.constraints, vc, d_glob, rejections)
        if ctx.feas is not None and rejections is not None:
            # Nova's verdicts known so far, among the pairs our own
            # constraints allow (asking happens best-first, later).
            ctx.feas.count(vc, d_glob, allowed, rejections)
        allowed &= (gain > 0) & ((gain >= min_gain)
                                 | over[src_local][:, None])
        allowed &= (ctx.gib[vc] <= ctx.gib_left())[:, None]
        score = -gain
        if settings.migration_cost:
            score = score / ctx.cost[vc][:, None]
        return np.where(allowed, score, np.inf), predicted


def gain_bound(loads, weights, capacity):
    """Upper bound of :func:`~nova_kronos.planner.gain` per host pair.

    For any server on host ``s`` moving to host ``d``, whatever its share.
    Moving share ``a`` (``k * a`` at the destination, ``k`` the ratio of
    capacities, as :func:`~nova_kronos.planner.state.scale_factor`) lowers
    policy ``p``'s sum of squared deviations by ``2 a c - a^2 q`` with
    ``c = L_s - k L_d + mean (k - 1)`` and ``q = 1 + k^2 - (k - 1)^2 / H``,
    at most ``c^2 / q`` (for ``c > 0``; else nothing). Since ``sigma -
    sigma' <= (SS - SS') / (H sigma)`` when ``SS' < SS``, the gain is at
    most ``sum_p w_p * max(0, c_p)^2 / (q_p * 2 sigma_p)``.

    :param loads: array [P, H] of the aggregate's loads.
    :param weights: array [P].
    :param capacity: array [P, H] (0 where unknown: k = 1).
    :returns: array [H, H] (source, destination).
    """
    n_pol, n_hosts = loads.shape
    out = np.zeros((n_hosts, n_hosts))
    for p in range(n_pol):
        sigma = loads[p].std()
        if not sigma > 0 or not weights[p] > 0:
            continue
        k = state_mod.scale_factor(capacity[p][:, None],
                                   capacity[p][None, :])
        mean = loads[p].mean()
        c = loads[p][:, None] - k * loads[p][None, :] + mean * (k - 1)
        q = 1 + k * k - (k - 1) ** 2 / n_hosts
        out += weights[p] * np.where(c > 0, c * c / q, 0.0) / (2 * sigma)
    return out
