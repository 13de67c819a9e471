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


"""Would Nova accept this live migration? The feasibility constraint.

The numpy masks of :mod:`nova_kronos.constraints` are a fast first cut
(liveness, zone, vCPU/RAM, thresholds, server groups). What remains is
asked of an *oracle* that applies Nova's own scheduling rules (Placement
allocation candidates, the enabled host filters; see
:mod:`nova_kronos.cloud.nova_rules`). Asking is expensive, so this
constraint is lazy and cached:

* servers with the same *request signature* (same flavor, image, project,
  hints, ...: whatever the oracle says makes Nova's answer identical)
  share one verdict per destination host, held in a dense array
  ``codes[signature, host]`` (-1 unknown, 0 accepted, ``k > 0`` rejected
  by rule ``k``), so looking a verdict up is one numpy gather;
* the planner asks for verdicts best-first: only the unknown pairs ranked
  ahead of the best known-accepted one are sent to the oracle, in batches,
  so the cost grows with the distinct (signature, host) pairs the plan
  actually considers, not with servers x hosts;
* a planned move tells the oracle, which says which hosts' verdicts may
  have changed (e.g. the destination's NUMA or PCI room); those columns go
  back to unknown.

Oracle protocol (duck-typed, implemented in :mod:`nova_kronos.cloud`)::

    oracle.excluded(servers) -> {server_id: reason}
        servers whose rules cannot be evaluated: left out of planning.
    oracle.signatures(servers) -> [hashable, ...]
        one request signature per server (same order).
    oracle.evaluate(pairs) -> [None | (rule, detail), ...]
        for ``(server, host_name)`` pairs of distinct (signature, host):
        None if Nova would accept the live migration, else the rule that
        refuses it (``'Placement'``, a filter class name, ...) and a detail.
    oracle.record_move(server, source, destination) -> iterable of hosts
        a planned move; returns the host names whose verdicts may change.

This module is part of the pure core: it imports neither Nova nor
openstacksdk.
"""

import numpy as np

UNKNOWN = -1
ACCEPTED = 0


class FeasibilityConstraint:
    """A lazily evaluated, cached constraint backed by an oracle.

    :param oracle: an object implementing the oracle protocol above.
    :param state: the plan's
        :class:`~nova_kronos.planner.state.PlanningState`.
    :param batch: largest number of (signature, host) pairs sent to the
        oracle at once.
    """

    def __init__(self, oracle, state, batch=32):
        self.oracle = oracle
        self.state = state
        self.batch = max(1, int(batch))
        self.rules = [None]          # rule index -> name; 0 = accepted
        self._rule_index = {}
        # (sig index, host index) -> detail of the latest rejection; a
        # re-asked pair that is rejected again overwrites it, and it is
        # only read for pairs whose code is a rejection.
        self.details = {}
        self.asked = 0               # pairs sent to the oracle
        self.sig = np.full(len(state.servers), -1, dtype=np.int64)
        self._sig_index = {}
        self.codes = np.full((0, len(state.host_names)), UNKNOWN,
                             dtype=np.int16)

    # -- life cycle ----------------------------------------------------------

    def applied(self, v, src, dst):
        """A move of candidate ``v`` from host index ``src`` to ``dst``."""
        changed = self.oracle.record_move(
            self.state.servers[v], self.state.host_names[src],
            self.state.host_names[dst]) or ()
        for host in changed:
            h = self.state.host_index.get(host)
            if h is not None:
                self.codes[:, h] = UNKNOWN

    # -- lookups -------------------------------------------------------------

    def _ensure_signatures(self, v_idx):
        """Fill ``self.sig`` for ``v_idx``; one oracle call per server."""
        missing = v_idx[self.sig[v_idx] < 0]
        if not len(missing):
            return
        missing = np.unique(missing)
        sigs = self.oracle.signatures([self.state.servers[v]
                                       for v in missing])
        for v, s in zip(missing, sigs):
            idx = self._sig_index.get(s)
            if idx is None:
                idx = self._sig_index[s] = len(self._sig_index)
            self.sig[v] = idx
        grow = len(self._sig_index) - self.codes.shape[0]
        if grow > 0:
            self.codes = np.vstack([self.codes, np.full(
                (grow, self.codes.shape[1]), UNKNOWN, dtype=np.int16)])

    def known(self, v_idx, d_glob):
        """Verdict codes [len(v_idx), len(d_glob)] (-1 where unknown)."""
        self._ensure_signatures(v_idx)
        # Columns first: copies S x D, not S x all hosts.
        return self.codes[:, d_glob][self.sig[v_idx]]

    def _code(self, rejection):
        if rejection is None:
            return ACCEPTED
        rule = rejection[0]
        k = self._rule_index.get(rule)
        if k is None:
            k = self._rule_index[rule] = len(self.rules)
            self.rules.append(rule)
        return k

    def _ask(self, pairs):
        """Evaluate ``(v, h)`` pairs of distinct (signature, host)."""
        answers = self.oracle.evaluate(
            [(self.state.servers[v], self.state.host_names[h])
             for v, h in pairs])
        self.asked += len(pairs)
        for (v, h), rejection in zip(pairs, answers):
            s = self.sig[v]
            self.codes[s, h] = self._code(rejection)
            if rejection is not None:
                self.details[(s, h)] = rejection[1]

    # -- the planner's entry points ------------------------------------------

    def best(self, v_idx, d_glob, masked):
        """Best-ranked pair Nova accepts, asking the oracle as needed.

        :param v_idx: candidate indexes [V].
        :param d_glob: destination host indexes [D].
        :param masked: float array [V, D], predicted imbalance where the
            eager constraints allow the pair, ``inf`` elsewhere. Modified
            in place: pairs found infeasible become ``inf``.
        :returns: flat index into ``masked`` of the best accepted pair, or
            None when no allowed pair is accepted.
        """
        known = self.known(v_idx, d_glob)
        masked[known > 0] = np.inf
        while True:
            flat = int(np.argmin(masked))
            if not np.isfinite(masked.flat[flat]):
                return None
            if known.flat[flat] == ACCEPTED:
                return flat
            # Gather the best-ranked unknown pairs, distinct by
            # (signature, host), and ask for them in one batch.
            window = min(masked.size, 8 * self.batch)
            top = np.argpartition(masked.ravel(), window - 1)[:window] \
                if window < masked.size else np.arange(masked.size)
            top = top[np.argsort(masked.flat[top], kind='stable')]
            pairs, seen = [], set()
            for f in top:
                if not np.isfinite(masked.flat[f]):
                    break
                if known.flat[f] == ACCEPTED:
                    break
                if known.flat[f] != UNKNOWN:
                    continue
                r, c = divmod(int(f), masked.shape[1])
                key = (int(self.sig[v_idx[r]]), int(d_glob[c]))
                if key not in seen:
                    seen.add(key)
                    pairs.append((int(v_idx[r]), int(d_glob[c])))
                    if len(pairs) >= self.batch:
                        break
            if pairs:
                self._ask(pairs)
            known = self.known(v_idx, d_glob)
            masked[known > 0] = np.inf

    def count(self, v_idx, d_glob, allowed, rejections):
        """Add the known rejections among ``allowed`` pairs, by rule."""
        known = self.known(v_idx, d_glob)
        codes = known[allowed & (known > 0)]
        if codes.size:
            for k, n in enumerate(np.bincount(codes)):
                if n:
                    rejections[self.rules[k]] = (
                        rejections.get(self.rules[k], 0) + int(n))

    def refused_everywhere(self, v_idx, h_idx):
        """Candidates every other host of ``h_idx`` is known to refuse.

        :returns: list of ``(v, {host index: (rule, detail)})``.
        """
        v_idx = v_idx[self.sig[v_idx] >= 0]
        if not len(v_idx) or not len(h_idx):
            return []
        sigs = np.unique(self.sig[v_idx])
        codes = self.codes[sigs][:, h_idx]            # [S, Ha]
        accepted = (codes == ACCEPTED).sum(axis=1)
        unknown = (codes == UNKNOWN).sum(axis=1)
        row = {int(s): i for i, s in enumerate(sigs)}
        in_scope = set(h_idx.tolist())
        out = []
        for v in v_idx:
            s = int(self.sig[v])
            i = row[s]
            src_code = self.codes[s, self.state.src[v]] \
                if self.state.src[v] in in_scope else None
            acc = accepted[i] - (src_code == ACCEPTED)
            unk = unknown[i] - (src_code == UNKNOWN)
            if acc == 0 and unk == 0:
                out.append((int(v), {
                    int(h): (self.rules[self.codes[s, h]],
                             self.details.get((s, int(h)), ''))
                    for h in h_idx if h != self.state.src[v]}))
        return out
