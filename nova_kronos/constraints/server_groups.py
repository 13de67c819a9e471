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


"""Server-group constraints: Nova's four policies and max_server_per_host.

A move must never leave a group in a state its policy forbids, and a soft
policy must not get worse:

* ``anti-affinity``: the destination holds fewer than
  ``max_server_per_host`` members (default 1; rules since microversion 2.64).
* ``affinity``: a member never moves alone (that would split the group).
* ``soft-anti-affinity``: the destination holds fewer members than the
  source does (counting the server itself), so collocation never grows.
* ``soft-affinity``: the destination holds at least as many members as the
  source does, so the group never scatters.

Member counts per (group, host) are an indexed array kept current as moves
are planned, so the check is O(1) per candidate.
"""

import numpy as np

from nova_kronos import fleet

POLICY_CODES = {None: 0, fleet.AFFINITY: 1, fleet.ANTI_AFFINITY: 2,
                fleet.SOFT_AFFINITY: 3, fleet.SOFT_ANTI_AFFINITY: 4}


def allowed(state, servers, hosts):
    n_v, n_h = len(servers), len(hosts)
    ok = np.ones((n_v, n_h), dtype=bool)
    gidx = state.group[servers]
    in_group = gidx >= 0
    if not in_group.any():
        return ok
    rows = np.nonzero(in_group)[0]
    g = gidx[rows]
    policy = state.group_policy[g]
    dst_count = state.group_counts[g][:, hosts]             # [R, n_h]
    src_count = state.group_counts[g, state.src[servers[rows]]][:, None]
    limit = state.group_max[g][:, None]
    sub = np.ones((len(rows), n_h), dtype=bool)
    sub = np.where((policy == POLICY_CODES[fleet.AFFINITY])[:, None],
                   False, sub)
    sub = np.where((policy == POLICY_CODES[fleet.ANTI_AFFINITY])[:, None],
                   dst_count < limit, sub)
    sub = np.where((policy == POLICY_CODES[fleet.SOFT_ANTI_AFFINITY])[:, None],
                   dst_count < src_count, sub)
    sub = np.where((policy == POLICY_CODES[fleet.SOFT_AFFINITY])[:, None],
                   dst_count >= src_count, sub)
    ok[rows] = sub
    return ok
