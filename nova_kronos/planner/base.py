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


"""What every planner does before and after choosing moves.

:func:`prepare` turns a fleet, a snapshot and Nova's migration memory into
a :class:`Context`: the exclusions (hosts without data, servers that may
not move and why), the indexed :class:`~nova_kronos.planner.state.
PlanningState` with recent migrations overlaid, the feasibility
constraint, the per-aggregate host index arrays and each candidate's
migration cost. The spread, pack and drain planners differ only in how
they choose moves on it; :meth:`Context.move` and :meth:`Context.finish`
record moves and reports the same way for all three.

Part of the pure core: imports neither Nova nor openstacksdk.
"""

import dataclasses

import numpy as np

from nova_kronos.constraints import feasibility
from nova_kronos import planner
from nova_kronos.planner import state as state_mod
from nova_kronos import scoring

#: Largest number of (server, host) pairs scored at once: chunks of this
#: size bound a planning step's memory (about 40 bytes a pair for the
#: temporaries) whatever the fleet's size.
CHUNK_PAIRS = 1 << 20


@dataclasses.dataclass
class Context:
    """One plan's working set (see :func:`prepare`).

    :ivar result: the :class:`~nova_kronos.planner.Plan` being filled.
    :ivar state: the :class:`~nova_kronos.planner.state.PlanningState`;
        its ``weights`` are those of the policies the planner balances.
    :ivar feas: a :class:`~nova_kronos.constraints.feasibility.
        FeasibilityConstraint`, or None without an oracle.
    :ivar scopes: list of ``(aggregate, host index array)``.
    :ivar gib: float array [V]: GiB each candidate's live migration copies.
    :ivar block: bool array [V]: the candidate needs a block migration.
    :ivar cost: float array [V]: ``gib + MIGRATION_OVERHEAD_GIB``.
    :ivar settings: the :class:`~nova_kronos.planner.Settings`.
    :ivar before: per scope, the ``(imbalance, dispersion, loads)`` at
        the start.
    :ivar rejections: per scope, constraint name -> rejected candidates
        in the last step.
    :ivar spent_gib: GiB of the moves planned so far.
    :ivar idle: no enabled policy is of the planner's mode (the state's
        weights are then all 0 and nothing is to be planned).
    """

    result: object
    state: object
    feas: object
    scopes: list
    gib: np.ndarray
    block: np.ndarray
    cost: np.ndarray
    settings: object
    before: list = dataclasses.field(default_factory=list)
    rejections: list = dataclasses.field(default_factory=list)
    spent_gib: float = 0.0
    idle: bool = False

    def staying(self, fleet):
        """Servers that may not move, by host: {host name: [server id]}.

        Every server of the fleet that is not a candidate (not ACTIVE,
        migrating, cooling down, without data, left out by Nova's rules),
        ids sorted; the exclusions say why for each.
        """
        candidates = {s.id for s in self.state.servers}
        out = {}
        for sid in sorted(fleet.servers):
            if sid not in candidates:
                out.setdefault(fleet.servers[sid].host, []).append(sid)
        return out

    def gib_left(self):
        """GiB the plan may still copy (inf without a limit)."""
        limit = self.settings.max_migrated_gib
        return float('inf') if limit is None else limit - self.spent_gib

    def move(self, v, dst, aggregate, reason, imbalance_before,
             imbalance_after):
        """Apply the move of candidate ``v`` to host index ``dst``.

        Updates the planning state and the feasibility oracle, and appends
        the :class:`~nova_kronos.planner.Move` to the plan.
        """
        st = self.state
        server, src = st.servers[v], st.src[v]
        st.apply(v, dst)
        if self.feas is not None:
            self.feas.applied(v, src, dst)
        gib = float(self.gib[v])
        self.spent_gib += gib
        move = planner.Move(
            server_id=server.id, server_name=server.name,
            source=st.host_names[src], destination=st.host_names[dst],
            aggregate=aggregate, reason=reason,
            imbalance_before=imbalance_before,
            imbalance_after=imbalance_after, gib=gib,
            block_migration=bool(self.block[v]),
            estimated_seconds=self.settings.seconds(gib))
        self.result.moves.append(move)
        return move

    def imbalance(self, h_idx):
        """Combined imbalance of the hosts ``h_idx`` now."""
        return scoring.imbalance(self.state.loads[:, h_idx],
                                 self.state.weights)

    def snapshot(self, h_idx):
        """``(imbalance, {policy: dispersion}, {policy: {host: load}})``."""
        st = self.state
        disp = np.atleast_1d(scoring.dispersion(st.loads[:, h_idx]))
        return (self.imbalance(h_idx),
                {p.name: float(disp[i]) for i, p in enumerate(st.policies)},
                {p.name: {st.host_names[h]: float(st.loads[i, h])
                          for h in h_idx}
                 for i, p in enumerate(st.policies)})

    def finish(self, freed=None):
        """Fill the per-aggregate reports; returns the plan.

        :param freed: optional list per scope of host names the plan
            empties.
        """
        st, result = self.state, self.result
        for i, (agg, h_idx) in enumerate(self.scopes):
            imb_b, disp_b, loads_b = self.before[i]
            imb_a, disp_a, loads_a = self.snapshot(h_idx)
            result.aggregates.append(planner.AggregateReport(
                name=agg.name, hosts=[st.host_names[h] for h in h_idx],
                imbalance_before=imb_b, imbalance_after=imb_a,
                dispersion_before=disp_b, dispersion_after=disp_a,
                loads_before=loads_b, loads_after=loads_a,
                rejections=self.rejections[i],
                freed_hosts=list(freed[i]) if freed else []))
            if self.feas is not None:
                _report_refused(st, self.feas, agg, h_idx, result)
        if self.feas is not None:
            result.oracle_queries = self.feas.asked
        return result

    def reason(self, v, dst, h_idx):
        """Which policy drives the move, with loads before and after."""
        st = self.state
        src = st.src[v]
        parts = []
        for p, policy in enumerate(st.policies):
            added = st.added_load(p, np.array([v]), np.array([dst]))[0, 0]
            mean = float(st.loads[p, h_idx].mean()) if len(h_idx) else 0.0
            parts.append((
                st.weights[p] * abs(st.loads[p, src] - mean),
                '%s: %s %.2f->%.2f, %s %.2f->%.2f (mean %.2f)' % (
                    policy.name, st.host_names[src], st.loads[p, src],
                    st.loads[p, src] - st.shares[p, v], st.host_names[dst],
                    st.loads[p, dst], st.loads[p, dst] + added, mean)))
        parts.sort(key=lambda x: -x[0])
        return '; '.join(text for _, text in parts)

    def allowed(self, constraint_set, v_idx, d_glob, rejections=None):
        """Bool [len(v_idx), len(d_glob)]: every constraint allows the pair.

        The pair of a server with its own host is never allowed. Counts
        each constraint's rejections into ``rejections`` when given.
        """
        st = self.state
        ok = st.src[v_idx][:, None] != d_glob[None, :]
        for name, check in constraint_set:
            verdict = check(st, v_idx, d_glob)
            if rejections is not None:
                rejected = int((ok & ~verdict).sum())
                if rejected:
                    rejections[name] = rejections.get(name, 0) + rejected
            ok &= verdict
        return ok


def prepare(fleet, policy_set, snapshot, settings, mode, oracle=None,
            memory=None, drain=(), fallback=False):
    """Exclusions, planning state and costs for one plan.

    :param mode: ``'spread'`` or ``'pack'``: the policies of this mode are
        the ones balanced (weights renormalised to sum to 1); the others
        still bound destinations by their thresholds. With no enabled
        policy of the mode, an exclusion says so, ``state.weights`` are 0
        and the context is ``idle``.
    :param fallback: with no enabled policy of ``mode``, balance every
        enabled policy by its weight instead (the drain planner's choice:
        its servers must go somewhere) and say nothing.
    :param drain: host names to empty. Their servers are candidates even
        while cooling down (a drain must not wait), a missing load or
        share counts as 0 (said in the exclusions), and they are never
        destinations.
    :returns: :class:`Context` (``scopes`` holds every aggregate's hosts
        with complete data, drained hosts included).
    """
    policies = policy_set.enabled
    drain = set(drain)
    result = planner.Plan(planner='drain' if drain else mode)
    for e in snapshot.exclusions:
        result.exclusions.append(
            (e.kind, e.name, '%s: %s' % (e.policy, e.reason)))

    scope = set()
    for agg in fleet.aggregates:
        scope.update(h for h in agg.hosts if h in fleet.hosts)
    loads = {p.name: dict(snapshot.data[p.name].hosts) for p in policies}
    shares = {p.name: dict(snapshot.data[p.name].vms) for p in policies}
    complete = []
    for h in sorted(scope):
        missing = [p.name for p in policies
                   if h not in snapshot.data[p.name].hosts]
        if missing and h in drain:
            result.exclusions.append(
                ('host', h, 'no load for policy %s; drained anyway'
                 % ', '.join(missing)))
            for name in missing:
                loads[name][h] = 0.0
            complete.append(h)
        elif missing:
            result.exclusions.append(
                ('host', h, 'no load for policy %s; left out of planning'
                 % ', '.join(missing)))
        else:
            complete.append(h)
    complete_set = set(complete)
    for h in complete:
        if not fleet.hosts[h].usable and h not in drain:
            result.exclusions.append(
                ('host', h, 'not a destination: %s'
                 % fleet.hosts[h].unusable_reason))

    candidates = []
    for s in sorted(fleet.servers.values(), key=lambda s: s.id):
        if s.host not in complete_set:
            continue
        drained = s.host in drain
        missing = [p.name for p in policies
                   if s.id not in snapshot.data[p.name].vms]
        if memory is not None and s.id in memory.frozen:
            result.exclusions.append(
                ('server', s.id, '%s; not moved' % memory.frozen[s.id]))
        elif missing and not drained:
            result.exclusions.append(
                ('server', s.id, 'no share for policy %s; not moved'
                 % ', '.join(missing)))
        elif not s.migratable:
            result.exclusions.append(
                ('server', s.id, 'status %s, task %s; not moved'
                 % (s.status, s.task_state)))
        elif memory is not None and s.id in memory.cooldown and \
                not drained:
            result.exclusions.append(
                ('server', s.id,
                 '%s; not moved' % memory.cooldown[s.id][1]))
        else:
            if missing:
                result.exclusions.append(
                    ('server', s.id, 'no share for policy %s; counted as 0 '
                     'for the drain' % ', '.join(missing)))
                for name in missing:
                    shares[name][s.id] = 0.0
            candidates.append(s.id)
    if oracle is not None and candidates:
        excluded = oracle.excluded(
            [fleet.servers[c] for c in candidates]) or {}
        for sid, why in sorted(excluded.items()):
            result.exclusions.append(
                ('server', sid, 'not moved: %s' % why))
        candidates = [c for c in candidates if c not in excluded]

    quarantine, in_flight = (), ()
    if memory is not None:
        over, result.overlay = overlay(fleet, policies, snapshot, memory,
                                       complete_set)
        for name, row in over.items():
            loads[name].update(row)
        quarantine, in_flight = memory.quarantine, memory.in_flight
    st = state_mod.PlanningState(fleet, policies, loads, shares, complete,
                                 candidates, quarantine=quarantine,
                                 in_flight=in_flight)
    for h in drain:
        if h in st.host_index:
            st.usable[st.host_index[h]] = False
    feas = (feasibility.FeasibilityConstraint(oracle, st)
            if oracle is not None else None)
    w = np.array([p.weight if p.mode == mode else 0.0 for p in policies])
    if not w.sum() > 0 and fallback:
        w = np.array([p.weight for p in policies])
    idle = not w.sum() > 0
    if idle:
        result.exclusions.append(
            ('policy', '*', 'no %s-mode policy is enabled: nothing for the '
             '%s planner to balance' % (mode, mode)))
    st.weights = w if idle else w / w.sum()

    gib_block = [settings.move_gib(s) for s in st.servers]
    gib = np.array([g for g, _ in gib_block], dtype=float)
    block = np.array([b for _, b in gib_block], dtype=bool)
    scopes = []
    for agg in fleet.aggregates:
        h_idx = np.array(sorted(st.host_index[h] for h in agg.hosts
                                if h in st.host_index), dtype=int)
        scopes.append((agg, h_idx))
    ctx = Context(result=result, state=st, feas=feas, scopes=scopes,
                  gib=gib, block=block,
                  cost=gib + planner.MIGRATION_OVERHEAD_GIB,
                  settings=settings, idle=idle)
    ctx.rejections = [{} for _ in scopes]
    ctx.before = [ctx.snapshot(h_idx) for _, h_idx in scopes]
    return ctx


def overlay(fleet, policies, snapshot, memory, scope):
    """Loads with recent migrations applied, and what was applied.

    Each in-flight migration (every policy) and each migration still
    settling for a policy moves the server's share from source to
    destination as a planned move would (``share * scale_factor``); only
    hosts in ``scope`` change, and changed loads are clipped to [0, 1].

    :returns: ``(loads, overlay)``: dict policy -> host -> load (hosts of
        ``scope``; a copy) and the ``Plan.overlay`` entries.
    """
    loads = {p.name: {h: snapshot.data[p.name].hosts[h] for h in scope
                      if h in snapshot.data[p.name].hosts}
             for p in policies}
    todo = {}
    for sid, src, dst in memory.in_flight:
        todo.setdefault((sid, src, dst, 'in progress'), []).extend(policies)
    for p in policies:
        for sid, src, dst in memory.settling.get(p.name, ()):
            todo.setdefault((sid, src, dst, 'completed'), []).append(p)
    touched = set()
    entries = []
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
            if src in row:
                row[src] -= share
            if dst in row:
                row[dst] += share * float(state_mod.scale_factor(
                    _capacity(fleet, src, p), _capacity(fleet, dst, p)))
            touched.update((p.name, h) for h in (src, dst) if h in row)
            done.append(p.name)
        entry = {'server_id': sid, 'source': src, 'destination': dst,
                 'state': state, 'policies': done}
        if missing:
            entry['skipped'] = 'no share for policy %s' % ', '.join(missing)
        entries.append(entry)
    for name, h in touched:
        loads[name][h] = min(1.0, max(0.0, loads[name][h]))
    return loads, entries


def _report_refused(st, feas, agg, h_idx, result):
    """Exclusions for servers Nova's rules allow nowhere else."""
    dests = h_idx[st.usable[h_idx]]
    local = np.isin(st.src, h_idx) & ~st.moved
    for v, why in feas.refused_everywhere(np.nonzero(local)[0], dests):
        by_rule = {}
        for h, (rule, detail) in sorted(why.items()):
            by_rule.setdefault((rule, detail), []).append(st.host_names[h])
        result.exclusions.append((
            'server', st.servers[v].id,
            'no other host of aggregate %s accepts it under Nova\'s '
            'rules: %s' % (agg.name, '; '.join(
                '%s refused by %s%s' % (
                    ','.join(hosts), rule,
                    ' (%s)' % detail if detail else '')
                for (rule, detail), hosts in sorted(by_rule.items())))))


def _capacity(fleet, host, policy):
    """Host capacity for the move model; 0 (unknown) for unknown hosts."""
    h = fleet.hosts.get(host)
    return state_mod.host_capacity(h, policy.resource) if h else 0.0


def chunks(n_rows, n_cols):
    """Row slices covering ``n_rows`` with at most CHUNK_PAIRS cells each."""
    step = max(1, CHUNK_PAIRS // max(1, n_cols))
    return [slice(i, min(n_rows, i + step)) for i in range(0, n_rows, step)]
