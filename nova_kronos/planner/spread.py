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

At each step, for every aggregate in scope, the planner scores every
(candidate server, destination host) pair of that aggregate with
:func:`nova_kronos.scoring.candidate_imbalance`, masks out the pairs a
constraint forbids (:mod:`nova_kronos.constraints`), and keeps the pair
that lowers the aggregate's combined imbalance most. The best of those
across aggregates is applied to the planning state, and the loop repeats
until the migration budget is spent or no move improves its aggregate by
at least ``min_improvement``. A server is moved at most once per plan.

The imbalance balanced here is that of the ``spread`` policies, their
weights renormalised to sum to 1; ``pack`` policies only bound the
destinations through their thresholds (consolidating is a pack planner's
job).

Cost per step: ``O(P * V_a * H_a)`` vectorised per aggregate, with every
lookup indexed (see :class:`~nova_kronos.planner.state.PlanningState`). In
large aggregates a first pass looks only at moves from the most loaded to
the least loaded hosts (``prune_hosts``), where the best moves are, and
falls back to every pair when that pass finds nothing worth doing.

With a :class:`nova_kronos.history.Memory` (Nova's recent live-migration
records), servers migrating or cooling down are not candidates, quarantined
(server, destination) pairs are masked, and migrations in progress or too
recent for the metrics are laid over the measured loads with the same move
model as a planned move, so a lagging rate window never makes the planner
correct the same imbalance twice.
"""

import numpy as np

from nova_kronos import constraints
from nova_kronos.constraints import feasibility
from nova_kronos import planner
from nova_kronos.planner import state as state_mod
from nova_kronos import scoring


class SpreadPlanner:
    """Plans moves that spread load evenly inside each aggregate.

    :param min_improvement: smallest drop of an aggregate's combined
        imbalance that justifies one live migration.
    :param constraint_set: sequence of ``(name, callable)``; default
        :data:`nova_kronos.constraints.DEFAULT`.
    :param prune_hosts: in aggregates of more than twice this many hosts,
        first look only at moves from the this-many most loaded hosts to
        the this-many least loaded; 0 always looks at every pair.
    """

    def __init__(self, min_improvement=0.001, constraint_set=None,
                 prune_hosts=16):
        self.min_improvement = float(min_improvement)
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
        policies = policy_set.enabled
        result = planner.Plan()
        for e in snapshot.exclusions:
            result.exclusions.append(
                (e.kind, e.name, '%s: %s' % (e.policy, e.reason)))

        scope = set()
        for agg in fleet.aggregates:
            scope.update(h for h in agg.hosts if h in fleet.hosts)
        complete = []
        for h in sorted(scope):
            missing = [p.name for p in policies
                       if h not in snapshot.data[p.name].hosts]
            if missing:
                result.exclusions.append(
                    ('host', h, 'no load for policy %s; left out of planning'
                     % ', '.join(missing)))
            else:
                complete.append(h)
        complete_set = set(complete)
        for h in complete:
            if not fleet.hosts[h].usable:
                result.exclusions.append(
                    ('host', h, 'not a destination: %s'
                     % fleet.hosts[h].unusable_reason))

        candidates = []
        for s in sorted(fleet.servers.values(), key=lambda s: s.id):
            if s.host not in complete_set:
                continue
            missing = [p.name for p in policies
                       if s.id not in snapshot.data[p.name].vms]
            if memory is not None and s.id in memory.frozen:
                result.exclusions.append(
                    ('server', s.id, '%s; not moved' % memory.frozen[s.id]))
            elif missing:
                result.exclusions.append(
                    ('server', s.id, 'no share for policy %s; not moved'
                     % ', '.join(missing)))
            elif not s.migratable:
                result.exclusions.append(
                    ('server', s.id, 'status %s, task %s; not moved'
                     % (s.status, s.task_state)))
            elif memory is not None and s.id in memory.cooldown:
                result.exclusions.append(
                    ('server', s.id,
                     '%s; not moved' % memory.cooldown[s.id][1]))
            else:
                candidates.append(s.id)
        if oracle is not None and candidates:
            excluded = oracle.excluded(
                [fleet.servers[c] for c in candidates]) or {}
            for sid, why in sorted(excluded.items()):
                result.exclusions.append(
                    ('server', sid, 'not moved: %s' % why))
            candidates = [c for c in candidates if c not in excluded]

        loads = {p.name: snapshot.data[p.name].hosts for p in policies}
        shares = {p.name: snapshot.data[p.name].vms for p in policies}
        quarantine, in_flight = (), ()
        if memory is not None:
            loads, result.overlay = self._overlay(
                fleet, policies, snapshot, memory, complete_set)
            quarantine, in_flight = memory.quarantine, memory.in_flight
        st = state_mod.PlanningState(fleet, policies, loads, shares,
                                     complete, candidates,
                                     quarantine=quarantine,
                                     in_flight=in_flight)
        feas = (feasibility.FeasibilityConstraint(oracle, st)
                if oracle is not None else None)
        # Balance the spread-mode policies only (weights renormalised);
        # pack-mode policies still bound destinations by their threshold.
        spread_w = np.array([p.weight if p.mode == 'spread' else 0.0
                             for p in policies])
        if spread_w.sum() > 0:
            st.weights = spread_w / spread_w.sum()
        else:
            result.exclusions.append(
                ('policy', '*', 'no spread-mode policy is enabled: nothing '
                 'for the spread planner to balance'))
            max_migrations = 0

        scopes = []
        for agg in fleet.aggregates:
            h_idx = np.array(sorted(st.host_index[h] for h in agg.hosts
                                    if h in st.host_index), dtype=int)
            scopes.append((agg, h_idx))
        before = [self._snapshot(st, h_idx) for _, h_idx in scopes]
        rejections = [{} for _ in scopes]

        while len(result.moves) < max_migrations:
            best = None
            for i, (agg, h_idx) in enumerate(scopes):
                found = self._best_move(st, h_idx, rejections[i], feas)
                if found is None:
                    continue
                gain = found[2] - found[3]
                if gain >= self.min_improvement and (
                        best is None or gain > best[1]):
                    best = (i, gain, found)
            if best is None:
                break
            i, _, (v, dst, cur, new) = best
            agg, h_idx = scopes[i]
            server = st.servers[v]
            src = st.src[v]
            source = st.host_names[src]
            reason = self._reason(st, v, dst, h_idx)
            st.apply(v, dst)
            if feas is not None:
                feas.applied(v, src, dst)
            result.moves.append(planner.Move(
                server_id=server.id, server_name=server.name, source=source,
                destination=st.host_names[dst], aggregate=agg.name,
                reason=reason, imbalance_before=cur, imbalance_after=new))

        for i, (agg, h_idx) in enumerate(scopes):
            imb_b, disp_b, loads_b = before[i]
            imb_a, disp_a, loads_a = self._snapshot(st, h_idx)
            result.aggregates.append(planner.AggregateReport(
                name=agg.name, hosts=[st.host_names[h] for h in h_idx],
                imbalance_before=imb_b, imbalance_after=imb_a,
                dispersion_before=disp_b, dispersion_after=disp_a,
                loads_before=loads_b, loads_after=loads_a,
                rejections=rejections[i]))
            if feas is not None:
                self._report_refused(st, feas, agg, h_idx, result)
        if feas is not None:
            result.oracle_queries = feas.asked
        return result

    @staticmethod
    def _overlay(fleet, policies, snapshot, memory, scope):
        """Loads with recent migrations applied, and what was applied.

        Each in-flight migration (every policy) and each migration still
        settling for a policy moves the server's share from source to
        destination as a planned move would (``share * scale_factor``);
        only hosts in ``scope`` change, and changed loads are clipped to
        [0, 1].

        :returns: ``(loads, overlay)``: dict policy -> host -> load (hosts
            of ``scope``; a copy) and the ``Plan.overlay`` entries.
        """
        loads = {p.name: {h: snapshot.data[p.name].hosts[h] for h in scope}
                 for p in policies}
        todo = {}
        for sid, src, dst in memory.in_flight:
            todo.setdefault((sid, src, dst, 'in progress'), []).extend(
                policies)
        for p in policies:
            for sid, src, dst in memory.settling.get(p.name, ()):
                todo.setdefault((sid, src, dst, 'completed'), []).append(p)
        touched = set()
        overlay = []
        for (sid, src, dst, state), pols in todo.items():
            if src not in scope and dst not in scope:
                continue
            done, missing = [], []
            for p in pols:
                share = snapshot.data[p.name].vms.get(sid)
                if share is None:
                    missing.append(p.name)
                    continue
                row = loads[p.name]
                if src in scope:
                    row[src] -= share
                if dst in scope:
                    row[dst] += share * float(state_mod.scale_factor(
                        _capacity(fleet, src, p), _capacity(fleet, dst, p)))
                touched.update((p.name, h) for h in (src, dst) if h in scope)
                done.append(p.name)
            entry = {'server_id': sid, 'source': src, 'destination': dst,
                     'state': state, 'policies': done}
            if missing:
                entry['skipped'] = 'no share for policy %s' % ', '.join(
                    missing)
            overlay.append(entry)
        for name, h in touched:
            loads[name][h] = min(1.0, max(0.0, loads[name][h]))
        return loads, overlay

    @staticmethod
    def _report_refused(st, feas, agg, h_idx, result):
        """Exclusions for servers Nova's rules allow nowhere else."""
        dests = h_idx[st.usable[h_idx]]
        local = np.isin(st.src, h_idx) & ~st.moved
        for v, why in feas.refused_everywhere(np.nonzero(local)[0], dests):
            by_rule = {}
            for h, (rule, detail) in sorted(why.items()):
                by_rule.setdefault((rule, detail), []).append(
                    st.host_names[h])
            result.exclusions.append((
                'server', st.servers[v].id,
                'no other host of aggregate %s accepts it under Nova\'s '
                'rules: %s' % (agg.name, '; '.join(
                    '%s refused by %s%s' % (
                        ','.join(hosts), rule,
                        ' (%s)' % detail if detail else '')
                    for (rule, detail), hosts in sorted(by_rule.items())))))

    def _snapshot(self, st, h_idx):
        sub = st.loads[:, h_idx]
        disp = np.atleast_1d(scoring.dispersion(sub))
        return (scoring.imbalance(sub, st.weights),
                {p.name: float(disp[i]) for i, p in enumerate(st.policies)},
                {p.name: {st.host_names[h]: float(st.loads[i, h])
                          for h in h_idx}
                 for i, p in enumerate(st.policies)})

    def _best_move(self, st, h_idx, rejections, feas):
        """Best (v, dst, imbalance now, imbalance after) in one aggregate.

        In a large aggregate the servers of the ``prune_hosts`` most loaded
        hosts are first tried against the ``prune_hosts`` least loaded
        ones (by weighted load); only if that finds no move worth
        ``min_improvement`` is every server tried against every host.
        """
        if len(h_idx) < 2:
            return None
        local = np.full(len(st.host_names), -1, dtype=int)
        local[h_idx] = np.arange(len(h_idx))
        movable = (local[st.src] >= 0) & ~st.moved
        sub_loads = st.loads[:, h_idx]
        current = scoring.imbalance(sub_loads, st.weights)
        tiers = [(None, np.arange(len(h_idx)))]
        k = self.prune_hosts
        if k and len(h_idx) > 2 * k:
            order = np.argsort(st.weights @ sub_loads, kind='stable')
            tiers.insert(0, (order[-k:], order[:k]))
        found = None
        for sources, dests in tiers:
            mask = movable
            if sources is not None:
                mask = movable & np.isin(st.src, h_idx[sources])
            found = self._best_in(st, h_idx, local, np.nonzero(mask)[0],
                                  dests, sub_loads, current, rejections,
                                  feas)
            if found is not None and current - found[3] >= \
                    self.min_improvement:
                return found
        return found

    def _best_in(self, st, h_idx, local, v_idx, dests, sub_loads, current,
                 rejections, feas):
        """Best move of servers ``v_idx`` to local host indexes ``dests``.

        ``feas`` (a ``FeasibilityConstraint``, or None) is asked last.
        """
        if not len(v_idx):
            return None
        d_glob = h_idx[dests]
        src_local = local[st.src[v_idx]]
        predicted = scoring.candidate_imbalance(
            sub_loads, st.weights, src_local, st.shares[:, v_idx],
            st.scale(v_idx, d_glob), dst=dests)
        allowed = src_local[:, None] != dests[None, :]
        rejections.clear()
        for name, check in self.constraints:
            ok = check(st, v_idx, d_glob)
            rejected = int((allowed & ~ok).sum())
            if rejected:
                rejections[name] = rejected
            allowed &= ok
        if not allowed.any():
            return None
        masked = np.where(allowed, predicted, np.inf)
        if feas is not None:
            # Nova's rules last, lazily and best-first (only the pairs
            # still in play are asked about).
            flat = feas.best(v_idx, d_glob, masked)
            feas.count(v_idx, d_glob, allowed, rejections)
            if flat is None:
                return None
        else:
            flat = int(np.argmin(masked))
        row, col = divmod(flat, len(dests))
        return (int(v_idx[row]), int(d_glob[col]), current,
                float(masked.flat[flat]))

    def _reason(self, st, v, dst, h_idx):
        """Say which policy drives the move, with loads before and after."""
        src = st.src[v]
        parts = []
        for p, policy in enumerate(st.policies):
            added = st.added_load(p, np.array([v]), np.array([dst]))[0, 0]
            mean = float(st.loads[p, h_idx].mean())
            parts.append((
                st.weights[p] * abs(st.loads[p, src] - mean),
                '%s: %s %.2f->%.2f, %s %.2f->%.2f (mean %.2f)' % (
                    policy.name, st.host_names[src], st.loads[p, src],
                    st.loads[p, src] - st.shares[p, v], st.host_names[dst],
                    st.loads[p, dst], st.loads[p, dst] + added, mean)))
        parts.sort(key=lambda x: -x[0])
        return '; '.join(text for _, text in parts)


def _capacity(fleet, host, policy):
    """Host capacity for the move model; 0 (unknown) for unknown hosts."""
    h = fleet.hosts.get(host)
    return state_mod.host_capacity(h, policy.resource) if h else 0.0
