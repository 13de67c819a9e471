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


"""Host scores, dispersion and the predicted effect of moving a server.

Pure functions on numpy arrays, shared by the scheduler weigher and the
rebalance planner so that both judge hosts the same way.

Notation (shapes in brackets):

* ``P`` policies, ``H`` hosts, ``V`` servers;
* ``loads[p, h]`` is host ``h``'s load for policy ``p``, in [0, 1]  [P, H];
* ``weights[p]`` are the enabled policies' weights, summing to 1  [P];
* ``shares[p, v]`` is server ``v``'s share of its current host  [P, V].

**Dispersion** of policy ``p`` over a set of hosts is the population
standard deviation of their loads::

    sigma_p = sqrt( sum_h (L[p,h] - mean_p)^2 / H )

**Combined imbalance** is the weighted sum ``I = sum_p w_p * sigma_p``; it is
0 when every policy's loads are equal on every host, and at most 0.5 (the
largest standard deviation of values in [0, 1]).

**Moving** server ``v`` from host ``s`` to host ``d`` is predicted to change
the loads to ``L[p,s] - a`` and ``L[p,d] + a * k`` with ``a = shares[p, v]``
and ``k = capacity[p, s] / capacity[p, d]`` (1 when the policy names no
resource, i.e. hosts are taken as equal in size): a server's share is
relative to the host it is on. Only two loads change, so the new sums of
loads and of their squares are updated in O(1) per candidate and the whole
``[V, H]`` table of predicted imbalances costs ``O(P * V * H)``
vectorised arithmetic, with no per-candidate pass over the fleet.
"""

import numpy as np

#: Weight given for a policy to a host without data: the middle of [0, 1],
#: so a host Prometheus does not know is neither favoured nor shunned.
NEUTRAL = 0.5


def within_threshold(load, threshold):
    """The threshold rule: may a host carry ``load`` under a policy?

    A policy's ``threshold`` is the highest load a host may carry, itself
    included: ``load <= threshold``. ``load`` is the host's load *after*
    the placement or move being judged. The filter (with the request's
    predicted share), the pack weigher and the planner's threshold
    constraint (with the moved server's predicted share) all apply this one
    rule. A NaN load (no data for the host) is within the threshold: the
    filter passes hosts Prometheus does not know.

    :param load: float or array of loads in [0, 1] (NaN allowed).
    :param threshold: float or array broadcastable with ``load``.
    :returns: bool or bool array of ``load``'s broadcast shape.
    """
    return np.logical_not(np.greater(load, threshold))


def dispersion(loads):
    """Population standard deviation of ``loads`` along the last axis.

    :param loads: array [..., H] of loads in [0, 1].
    :returns: array [...] (a float for a 1-D input); 0 for fewer than 2 hosts.
    """
    loads = np.asarray(loads, dtype=float)
    if loads.shape[-1] < 2:
        return np.zeros(loads.shape[:-1]) if loads.ndim > 1 else 0.0
    return loads.std(axis=-1)


def imbalance(loads, weights):
    """Combined imbalance ``sum_p w_p * sigma_p`` (see module docstring).

    :param loads: array [P, H].
    :param weights: array [P].
    :returns: float.
    """
    return float(np.dot(np.asarray(weights, dtype=float),
                        np.atleast_1d(dispersion(np.atleast_2d(loads)))))


def candidate_imbalance(loads, weights, src, shares, scale=None, dst=None):
    """Predicted combined imbalance after each single move.

    :param loads: array [P, H] of current loads of the hosts considered.
    :param weights: array [P].
    :param src: int array [V]: index (into H) of each server's current
        host, or -1 for a server on a host outside the H considered (a
        drained host): only its destination's load changes.
    :param shares: array [P, V]: each server's share of its current host.
    :param scale: optional array [P, V, D] of ``k`` factors (see module
        docstring); ``None`` means 1 everywhere.
    :param dst: optional int array [D] of destination indexes (into H);
        default every host (D = H). Dispersion is always over all H hosts.
    :returns: array [V, D]: the imbalance if server ``v`` moved to host
        ``dst[d]``. Entries where ``dst[d] == src[v]`` are meaningless and
        are left for the caller to mask.
    """
    loads = np.asarray(loads, dtype=float)
    n_pol, n_hosts = loads.shape
    dst = np.arange(n_hosts) if dst is None else np.asarray(dst)
    total = np.zeros((len(src), len(dst)))
    if n_hosts < 2:
        return total
    sums = loads.sum(axis=1)
    squares = (loads * loads).sum(axis=1)
    src = np.asarray(src)
    inside = (src >= 0)[:, None]                   # [V, 1]
    for p in range(n_pol):
        a = shares[p][:, None]                     # [V, 1]
        added = a if scale is None else a * scale[p]   # [V, D]
        a = np.where(inside, a, 0.0)
        l_src = np.where(inside, loads[p, src][:, None], 0.0)   # [V, 1]
        l_dst = loads[p, dst][None, :]             # [1, D]
        new_sum = sums[p] - a + added
        new_sq = (squares[p] - l_src ** 2 + (l_src - a) ** 2
                  - l_dst ** 2 + (l_dst + added) ** 2)
        mean = new_sum / n_hosts
        var = np.maximum(new_sq / n_hosts - mean * mean, 0.0)
        total += weights[p] * np.sqrt(var)
    return total


def host_weights(loads, modes, weights, thresholds):
    """Per-host desirability in [0, 1] for the scheduler weigher.

    A spread policy contributes ``1 - load`` (the emptiest host wins, which is
    also the placement that lowers dispersion most); a pack policy contributes
    ``load`` while the host is :func:`within_threshold` and 0 once above it
    (the fullest host that still has room wins). The scheduler passes the
    loads a host would have after taking the request. A missing load
    (NaN) contributes :data:`NEUTRAL`. Contributions are weighted by the
    policy weights, so the result stays in [0, 1].

    :param loads: array [P, H], NaN where a host has no data.
    :param modes: sequence [P] of ``'spread'`` or ``'pack'``.
    :param weights: array [P], summing to 1.
    :param thresholds: array [P].
    :returns: array [H].
    """
    loads = np.asarray(loads, dtype=float)
    out = np.zeros(loads.shape[1])
    for p, mode in enumerate(modes):
        row = loads[p]
        if mode == 'spread':
            part = 1.0 - row
        else:
            part = np.where(within_threshold(row, thresholds[p]), row, 0.0)
        part = np.where(np.isnan(row), NEUTRAL, np.clip(part, 0.0, 1.0))
        out += weights[p] * part
    return out
